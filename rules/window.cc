// Windows and aggregates (RULES.md "Windows", "Aggregates"). See rules/window.h for the contract.
//
// One implementation, EntryWindow, serves every kind. The window is a FIFO of *entries* kept in a
// ring buffer indexed by a monotonically increasing sequence number (seq). An entry holds the
// partial aggregates of one or more events and the time of its latest event (`last_ts`):
//
//   kSliding   an entry is one event while the window holds fewer than kExactEntries entries;
//              from then on an event whose pane (slice ((k-1)·r, k·r], k = ceil(ts / r)) is the
//              last entry's pane merges into it. An entry leaves at last_ts + D, so an event of a
//              merged entry leaves late by less than r (the tolerance RULES.md allows), and the
//              entry count is bounded by about kExactEntries + D/r + 2 whatever the event rate.
//              Slow groups (the common case, and what replays test) get exact leave instants.
//   kCount     one entry per event; the oldest is dropped once there are more than N.
//   kTumbling,
//   kSession   a single entry into which everything merges; only Clear() empties it.
//
// Numeric aggregates (count, sum, avg, min, max, stddev) are kept as a fixed-width array of
// doubles per entry ("partials") and combined with the *two-stacks* sliding-window aggregation
// (in its "lite" in-place form): entries [head, boundary) form the front stack and hold *suffix*
// aggregates (entry i holds the fold of entries i..boundary-1); entries [boundary, tail) form the
// back stack and hold their own partial, and `back` holds the fold of the back stack. The
// window's value is front[head] ⊕ back_. Popping from an empty front "flips": the back (except
// the last entry, see below) is turned into suffix aggregates in one backward pass. Every entry is
// flipped at most once, so Add/Expire cost O(1) amortized; Results is O(slots).
//   Why this rather than running totals: nothing is ever subtracted, so sums cannot drift or
//   cancel catastrophically (1e20 + 1 - 1e20), min/max stay correct when the entry holding the
//   extremum leaves without rescanning, and stddev uses Welford updates and Chan's parallel
//   combine (numerically stable). The last entry is never flipped into the front, because events
//   may still merge into it; merging updates its partial and back_ together.
//
// first/last: each entry keeps (owned copies of) the first / last value it saw per slot; the
// window tracks the seq of the oldest entry with a value (first) and of the newest (last). When
// the oldest is popped the next one is found by scanning forward; entries scanned over are older
// than the one found and are never scanned again, so this is O(1) amortized.
//
// count_distinct: a value is identified by a 64-bit hash of (type, content) — the number 1, the
// string "1" and true are distinct; -0 and 0 are the same number, as in SameValue(). Two distinct
// values colliding (probability about n²/2^65 for n values in a window) would be counted once; we
// accept that rather than storing strings. Per slot, an open-addressing table maps each hash in the
// window to the seq of the newest entry that holds it; each entry lists the hashes for which it
// became the newest holder. When an entry leaves, the hashes still pointing at it leave the table
// (the others were seen again later). Count = table size. Once the table holds
// kMaxDistinctPerWindow hashes, new values are not tracked (the result undercounts) and
// DistinctOverflow() is true until the window is cleared or becomes empty.
//
// Deviations / decisions:
// - count(): the header passes Missing for count()'s argument, so a window cannot tell count()
//   from count(x) with x missing; count counts every event and ignores its argument.
// - count_distinct has no value (Missing) when no event in the window has a value for its
//   argument — in particular over an empty window — like min/max/avg ("the others have no value").
// - Add() with a time earlier than the previous one (the engine guarantees it does not happen) is
//   treated as the previous time, so leave instants stay ordered.
//
// Memory: what every group of a rule shares (spec, slot lists, widths) is in the rule's
// WindowLayout; a window holds a pointer to it, four sequence numbers, one block with the back
// aggregate followed by the ring's (last_ts, partials) cells, and — only for rules with first/last
// or count_distinct — a pointer to the extra state those need. With a handful of numeric slots a
// window is 64 bytes plus one heap block.
//
// Allocation: the ring, the partial arrays and the hash tables grow geometrically and are reused;
// a warm window does not allocate on Add/Expire for numeric slots. Strings in first/last reuse
// their buffers (no allocation for short strings or strings no longer than before), distinct
// lists reuse their capacity.
#include "rules/window.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include "rules/prefetch.h"

namespace vigie::rules {

namespace {

// The durable form's first byte. Format 1 (up to 8ca9379) is still read; format 2 is written.
constexpr uint8_t kFormat1 = 1;
constexpr uint8_t kFormat2 = 2;
// Below this many entries, a sliding window keeps one entry per event (exact leave instants).
constexpr uint64_t kExactEntries = 32;
constexpr uint64_t kNoSeq = ~uint64_t{0};

int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kNever : std::numeric_limits<int64_t>::min();
  return r;
}

// ceil(ts / r) for r > 0 (C++ division truncates toward zero, which is already ceil for ts < 0).
int64_t PaneOf(int64_t ts, int64_t r) {
  int64_t q = ts / r;
  if (ts % r > 0) ++q;
  return q;
}

// ---- hashing (stable across builds: it is persisted) ----

uint64_t Fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

uint64_t HashBytes(uint64_t tag, const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = (0x9E3779B97F4A7C15ull * (tag + 1)) ^ (static_cast<uint64_t>(len) * 0xC2B2AE3D27D4EB4Full);
  auto mix_word = [&h](uint64_t w) {
    h ^= Fmix(w * 0x87c37b91114253d5ull);
    h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
  };
  while (len >= 8) {
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w |= static_cast<uint64_t>(p[i]) << (8 * i);
    mix_word(w);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t w = 0;
    for (size_t i = 0; i < len; ++i) w |= static_cast<uint64_t>(p[i]) << (8 * i);
    mix_word(w ^ (uint64_t{0xA5} << 56));
  }
  return Fmix(h);
}

uint64_t HashValue(const Value& v) {
  uint64_t h = 0;
  switch (v.type) {
    case Type::kMissing: return 0;
    case Type::kNumber: {
      double d = v.num;
      if (d == 0) d = 0;  // -0 == 0
      uint64_t bits;
      if (std::isnan(d)) bits = 0x7ff8000000000000ull;
      else std::memcpy(&bits, &d, 8);
      unsigned char b[8];
      for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(bits >> (8 * i));
      h = HashBytes(1, b, 8);
      break;
    }
    case Type::kString: h = HashBytes(2, v.str.data(), v.str.size()); break;
    case Type::kBool: {
      unsigned char b = v.b ? 1 : 0;
      h = HashBytes(3, &b, 1);
      break;
    }
  }
  return h == 0 ? 1 : h;  // 0 marks an empty table slot
}

// ---- open-addressing hash -> seq table (linear probing, backward-shift deletion) ----

class HashSeqTable {
 public:
  size_t size() const { return size_; }
  size_t capacity() const { return keys_.size(); }

  uint64_t* Find(uint64_t key) {
    return const_cast<uint64_t*>(static_cast<const HashSeqTable*>(this)->Find(key));
  }
  const uint64_t* Find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    size_t mask = keys_.size() - 1;
    for (size_t i = key & mask;; i = (i + 1) & mask) {
      if (keys_[i] == key) return &seqs_[i];
      if (keys_[i] == 0) return nullptr;
    }
  }
  // A cache hint for Find(key) and the update that follows it.
  void PrefetchFind(uint64_t key) const {
    if (keys_.empty()) return;
    const size_t i = key & (keys_.size() - 1);
    Prefetch(&keys_[i]);
    Prefetch(&seqs_[i]);
  }
  // `key` must not be present.
  void Insert(uint64_t key, uint64_t seq) {
    if ((size_ + 1) * 2 > keys_.size()) Grow();
    size_t mask = keys_.size() - 1;
    size_t i = key & mask;
    while (keys_[i] != 0) i = (i + 1) & mask;
    keys_[i] = key;
    seqs_[i] = seq;
    ++size_;
  }
  void Erase(uint64_t key) {
    if (keys_.empty()) return;
    size_t mask = keys_.size() - 1;
    size_t i = key & mask;
    while (keys_[i] != key) {
      if (keys_[i] == 0) return;
      i = (i + 1) & mask;
    }
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (keys_[j] == 0) break;
      size_t k = keys_[j] & mask;  // home of the key at j
      bool k_in_gap = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
      if (k_in_gap) continue;
      keys_[i] = keys_[j];
      seqs_[i] = seqs_[j];
      i = j;
    }
    keys_[i] = 0;
    --size_;
  }
  void Clear(bool release) {
    if (release) {
      std::vector<uint64_t>().swap(keys_);
      std::vector<uint64_t>().swap(seqs_);
    } else {
      std::fill(keys_.begin(), keys_.end(), 0);
    }
    size_ = 0;
  }
  size_t MemoryBytes() const { return (keys_.capacity() + seqs_.capacity()) * sizeof(uint64_t); }
  template <class F>
  void ForEachKey(F f) const {
    for (uint64_t k : keys_) {
      if (k != 0) f(k);
    }
  }

 private:
  void Grow() {
    size_t cap = keys_.empty() ? 16 : keys_.size() * 2;
    std::vector<uint64_t> keys(cap, 0), seqs(cap, 0);
    size_t mask = cap - 1;
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] == 0) continue;
      size_t j = keys_[i] & mask;
      while (keys[j] != 0) j = (j + 1) & mask;
      keys[j] = keys_[i];
      seqs[j] = seqs_[i];
    }
    keys_.swap(keys);
    seqs_.swap(seqs);
  }

  std::vector<uint64_t> keys_;  // 0 = empty
  std::vector<uint64_t> seqs_;
  size_t size_ = 0;
};

// ---- numeric partials ----

// Width in doubles of a slot's numeric partial.
uint32_t NumWidth(AggFunc f) {
  switch (f) {
    case AggFunc::kCount: return 1;   // n
    case AggFunc::kSum: return 1;     // sum
    case AggFunc::kAvg: return 2;     // n, sum
    case AggFunc::kMin: return 2;     // n, min
    case AggFunc::kMax: return 2;     // n, max
    case AggFunc::kStddev: return 3;  // n, mean, m2
    default: return 0;
  }
}

using NumSlot = WindowLayout::NumSlot;

void Identity(const std::vector<NumSlot>& ns, double* p) {
  for (const NumSlot& s : ns) {
    double* q = p + s.off;
    switch (s.func) {
      case AggFunc::kMin: q[0] = 0; q[1] = std::numeric_limits<double>::infinity(); break;
      case AggFunc::kMax: q[0] = 0; q[1] = -std::numeric_limits<double>::infinity(); break;
      case AggFunc::kStddev: q[2] = 0; [[fallthrough]];
      case AggFunc::kAvg: q[1] = 0; [[fallthrough]];
      default: q[0] = 0; break;
    }
  }
}

void AddEvent(const std::vector<NumSlot>& ns, double* p, std::span<const Value> args) {
  for (const NumSlot& s : ns) {
    double* q = p + s.off;
    if (s.func == AggFunc::kCount) {
      q[0] += 1;
      continue;
    }
    if (s.slot >= args.size() || !args[s.slot].is_number()) continue;
    double x = args[s.slot].num;
    switch (s.func) {
      case AggFunc::kSum: q[0] += x; break;
      case AggFunc::kAvg: q[0] += 1; q[1] += x; break;
      case AggFunc::kMin: q[0] += 1; if (x < q[1]) q[1] = x; break;
      case AggFunc::kMax: q[0] += 1; if (x > q[1]) q[1] = x; break;
      case AggFunc::kStddev: {  // Welford
        q[0] += 1;
        double d = x - q[1];
        q[1] += d / q[0];
        q[2] += d * (x - q[1]);
        break;
      }
      default: break;
    }
  }
}

// dst = a ⊕ b (a older than b). dst may alias a or b.
void Combine(const std::vector<NumSlot>& ns, double* dst, const double* a, const double* b) {
  for (const NumSlot& s : ns) {
    const double* x = a + s.off;
    const double* y = b + s.off;
    double* d = dst + s.off;
    switch (s.func) {
      case AggFunc::kCount:
      case AggFunc::kSum: d[0] = x[0] + y[0]; break;
      case AggFunc::kAvg: d[0] = x[0] + y[0]; d[1] = x[1] + y[1]; break;
      case AggFunc::kMin: d[1] = std::min(x[1], y[1]); d[0] = x[0] + y[0]; break;
      case AggFunc::kMax: d[1] = std::max(x[1], y[1]); d[0] = x[0] + y[0]; break;
      case AggFunc::kStddev: {  // Chan et al. parallel combine
        double na = x[0], nb = y[0];
        if (nb == 0) {
          d[0] = x[0]; d[1] = x[1]; d[2] = x[2];
        } else if (na == 0) {
          d[0] = y[0]; d[1] = y[1]; d[2] = y[2];
        } else {
          double n = na + nb;
          double delta = y[1] - x[1];
          double mean = x[1] + delta * (nb / n);
          double m2 = x[2] + y[2] + delta * delta * (na * nb / n);
          d[0] = n; d[1] = mean; d[2] = m2;
        }
        break;
      }
      default: break;
    }
  }
}

Value NumResult(const NumSlot& s, const double* p) {
  const double* q = p + s.off;
  switch (s.func) {
    case AggFunc::kCount: return Value::Number(q[0]);
    case AggFunc::kSum: return Value::Number(q[0]);
    case AggFunc::kAvg: return q[0] > 0 ? Value::Number(q[1] / q[0]) : Value::Missing();
    case AggFunc::kMin:
    case AggFunc::kMax: return q[0] > 0 ? Value::Number(q[1]) : Value::Missing();
    case AggFunc::kStddev:
      return q[0] > 0 ? Value::Number(std::sqrt(std::max(0.0, q[2] / q[0]))) : Value::Missing();
    default: return Value::Missing();
  }
}

// ---- binary encoding ----

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
uint64_t ZigzagEncode(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t ZigzagDecode(uint64_t u) { return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1)); }
void PutZigzag(std::string* out, int64_t v) { PutVarint(out, ZigzagEncode(v)); }
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutDouble(std::string* out, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  PutFixed64(out, bits);
}
void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// Format 2's numbers. Most partials are counts and sums of integer readings: an integer of at
// most 2^53 in magnitude (exactly representable) is the varint of its zigzag shifted left (even,
// 1-8 bytes: a count of 1 is one byte instead of eight); anything else (fractions, -0, NaN,
// infinities, huge values) is the byte 0x01 then the 8 bytes of the double.
constexpr double kMaxExactInt = 9007199254740992.0;  // 2^53
void PutNum(std::string* out, double d) {
  if (d >= -kMaxExactInt && d <= kMaxExactInt) {  // false for NaN
    const auto i = static_cast<int64_t>(d);
    if (static_cast<double>(i) == d && !(i == 0 && std::signbit(d))) {
      PutVarint(out, ZigzagEncode(i) << 1);
      return;
    }
  }
  out->push_back(1);
  PutDouble(out, d);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool Byte(uint8_t* b) {
    if (p_ == end_) return false;
    *b = static_cast<uint8_t>(*p_++);
    return true;
  }
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      if (shift == 63 && b > 1) return false;  // would overflow 64 bits
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool Zigzag(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = ZigzagDecode(u);
    return true;
  }
  // Little-endian fixed-width integers (uint32_t, uint64_t).
  template <class T>
  bool Fixed(T* v) {
    if (remaining() < sizeof(T)) return false;
    T r = 0;
    for (size_t i = 0; i < sizeof(T); ++i) r |= static_cast<T>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += sizeof(T);
    *v = r;
    return true;
  }
  bool Fixed64(uint64_t* v) { return Fixed(v); }
  bool Double(double* d) {
    uint64_t bits;
    if (!Fixed64(&bits)) return false;
    std::memcpy(d, &bits, 8);
    return true;
  }
  bool Fixed32(uint32_t* v) { return Fixed(v); }
  // A number as PutNum (format 2) or PutDouble (format 1) wrote it.
  bool Num(uint8_t format, double* d) {
    if (format == kFormat1) return Double(d);
    uint64_t u;
    if (!Varint(&u)) return false;
    if (u & 1) return u == 1 && Double(d);
    const int64_t i = ZigzagDecode(u >> 1);
    if (i < -(int64_t{1} << 53) || i > (int64_t{1} << 53)) return false;  // PutNum never writes it
    *d = static_cast<double>(i);
    return true;
  }
  bool Bytes(size_t n, std::string_view* s) {
    if (remaining() < n) return false;
    *s = std::string_view(p_, n);
    p_ += n;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

void PutOwned(std::string* out, const OwnedValue& v) {
  out->push_back(static_cast<char>(v.type));
  switch (v.type) {
    case Type::kMissing: break;
    case Type::kNumber: PutNum(out, v.num); break;
    case Type::kBool: out->push_back(v.b ? 1 : 0); break;
    case Type::kString:
      PutVarint(out, v.str.size());
      out->append(v.str);
      break;
  }
}

bool GetOwned(Reader* r, uint8_t format, OwnedValue* v) {
  uint8_t t;
  if (!r->Byte(&t)) return false;
  switch (t) {
    case static_cast<uint8_t>(Type::kMissing): v->Assign(Value::Missing()); return true;
    case static_cast<uint8_t>(Type::kNumber): {
      double d;
      if (!r->Num(format, &d)) return false;
      v->Assign(Value::Number(d));
      return true;
    }
    case static_cast<uint8_t>(Type::kBool): {
      uint8_t b;
      if (!r->Byte(&b) || b > 1) return false;
      v->Assign(Value::Bool(b == 1));
      return true;
    }
    case static_cast<uint8_t>(Type::kString): {
      uint64_t n;
      std::string_view s;
      if (!r->Varint(&n) || n > r->remaining() || !r->Bytes(static_cast<size_t>(n), &s)) return false;
      v->Assign(Value::String(s));
      return true;
    }
    default: return false;
  }
}

constexpr uint64_t kChecksumTag = 0xC5;

// Heap bytes of a string beyond its small-string buffer.
size_t HeapBytes(const std::string& str) { return str.capacity() > 15 ? str.capacity() + 1 : 0; }

// ---- the window ----

using Mode = WindowLayout::Mode;

// first/last and count_distinct state. Most windows (count, sum, avg, min, max) have none, so it
// lives behind one pointer, allocated only when the layout has such slots.
struct Extra {
  std::vector<OwnedValue> fl;                // per ring position × first/last slots
  std::vector<std::vector<uint64_t>> dlist;  // per ring position × distinct slots
  std::vector<uint64_t> fl_seq;              // per first/last slot
  std::vector<HashSeqTable> tables;          // per distinct slot
  std::vector<bool> overflow;                // per distinct slot
  size_t extra_bytes = 0;  // heap held by fl strings and dlist vectors (MemoryBytes in O(1))
};

// Everything that changes; swapped in whole by Deserialize.
struct State {
  uint64_t head = 0, boundary = 0, tail = 0;  // seqs: front [head, boundary), back [boundary, tail)
  uint64_t cap = 0;                           // ring capacity (0 or a power of two)
  // One block: `width` doubles holding the back-stack aggregate, then per ring position a cell
  // holding the entry's last_ts (int64 bits) followed by its `width` doubles of partials.
  std::unique_ptr<double[]> buf;
  std::unique_ptr<Extra> x;  // null unless the layout has first/last or count_distinct slots

  void Init(const WindowLayout& l) {
    head = boundary = tail = cap = 0;
    buf = l.width > 0 ? std::make_unique<double[]>(l.width) : nullptr;
    x.reset();
    if (!l.fl.empty() || !l.distinct.empty()) {
      x = std::make_unique<Extra>();
      x->fl_seq.assign(l.fl.size(), kNoSeq);
      x->tables.resize(l.distinct.size());
      x->overflow.assign(l.distinct.size(), false);
    }
  }
  static size_t Doubles(uint32_t width, uint64_t cap) { return width + cap * (width + 1); }
  uint64_t Pos(uint64_t seq) const { return seq & (cap - 1); }
  double* Back() { return buf.get(); }
  const double* Back() const { return buf.get(); }
  double* Cell(uint64_t pos, uint32_t width) const { return buf.get() + width + pos * (width + 1); }
  double* Agg(uint64_t pos, uint32_t width) { return Cell(pos, width) + 1; }
  const double* Agg(uint64_t pos, uint32_t width) const { return Cell(pos, width) + 1; }
  int64_t Ts(uint64_t pos, uint32_t width) const {
    int64_t ts;
    std::memcpy(&ts, Cell(pos, width), sizeof ts);
    return ts;
  }
  void SetTs(uint64_t pos, uint32_t width, int64_t ts) {
    std::memcpy(Cell(pos, width), &ts, sizeof ts);
  }

  void Grow(const WindowLayout& l) {
    const uint32_t width = l.width;
    const size_t nfl = l.fl.size(), nd = l.distinct.size();
    uint64_t ncap = cap == 0 ? 4 : cap * 2;
    auto nbuf = std::make_unique_for_overwrite<double[]>(Doubles(width, ncap));
    std::copy_n(buf.get(), width, nbuf.get());  // the back aggregate
    uint64_t nmask = ncap - 1;
    for (uint64_t seq = head; seq < tail; ++seq) {
      uint64_t o = Pos(seq), p = seq & nmask;
      std::copy_n(Cell(o, width), width + 1, nbuf.get() + width + p * (width + 1));
    }
    if (x != nullptr) {
      std::vector<OwnedValue> nfls(ncap * nfl);
      std::vector<std::vector<uint64_t>> ndl(ncap * nd);
      for (uint64_t seq = head; seq < tail; ++seq) {
        uint64_t o = Pos(seq), p = seq & nmask;
        for (size_t i = 0; i < nfl; ++i) nfls[p * nfl + i] = std::move(x->fl[o * nfl + i]);
        for (size_t i = 0; i < nd; ++i) ndl[p * nd + i] = std::move(x->dlist[o * nd + i]);
      }
      x->fl.swap(nfls);
      x->dlist.swap(ndl);
    }
    cap = ncap;
    buf = std::move(nbuf);
  }
};

class EntryWindow : public Window {
 public:
  explicit EntryWindow(const WindowLayout* layout) : l_(layout) {
    st_.Init(*l_);
    Identity(l_->num, st_.Back());
  }

  void Rebind(const WindowLayout* layout) override { l_ = layout; }

  void Add(int64_t ts, std::span<const Value> args) override {
    const WindowLayout& l = *l_;
    const uint32_t width = l.width;
    State& s = st_;
    uint64_t n = s.tail - s.head;
    bool merge = false;
    if (n > 0) {
      int64_t last = s.Ts(s.Pos(s.tail - 1), width);
      ts = std::max(ts, last);
      if (l.mode == Mode::kAccumulate) {
        merge = true;
      } else if (l.mode == Mode::kSliding && n >= kExactEntries) {
        merge = PaneOf(ts, l.resolution) == PaneOf(last, l.resolution);
      }
    }
    const size_t nfl = l.fl.size(), nd = l.distinct.size();
    if (!merge) {
      if (n == s.cap) s.Grow(l);
      uint64_t pos = s.Pos(s.tail);
      Identity(l.num, s.Agg(pos, width));
      for (size_t i = 0; i < nfl; ++i) s.x->fl[pos * nfl + i].type = Type::kMissing;
      for (size_t i = 0; i < nd; ++i) s.x->dlist[pos * nd + i].clear();
      ++s.tail;
    }
    uint64_t seq = s.tail - 1;
    uint64_t pos = s.Pos(seq);
    s.SetTs(pos, width, ts);
    AddEvent(l.num, s.Agg(pos, width), args);
    AddEvent(l.num, s.Back(), args);
    for (size_t i = 0; i < nfl; ++i) {
      uint32_t slot = l.fl[i].slot;
      if (slot >= args.size() || args[slot].missing()) continue;
      Extra& x = *s.x;
      OwnedValue& v = x.fl[pos * nfl + i];
      if (l.fl[i].func == AggFunc::kLast || v.type == Type::kMissing) {
        size_t before = HeapBytes(v.str);
        v.Assign(args[slot]);
        x.extra_bytes += HeapBytes(v.str) - before;
      }
      if (x.fl_seq[i] == kNoSeq || l.fl[i].func == AggFunc::kLast) x.fl_seq[i] = seq;
    }
    for (size_t i = 0; i < nd; ++i) {
      uint32_t slot = l.distinct[i];
      if (slot >= args.size() || args[slot].missing()) continue;
      Extra& x = *s.x;
      uint64_t h = HashValue(args[slot]);
      HashSeqTable& t = x.tables[i];
      uint64_t* at = t.Find(h);
      if (at != nullptr) {
        if (*at == seq) continue;
        *at = seq;
      } else if (t.size() >= kMaxDistinctPerWindow) {
        x.overflow[i] = true;
        continue;
      } else {
        t.Insert(h, seq);
      }
      if (l.mode != Mode::kAccumulate) {
        std::vector<uint64_t>& list = x.dlist[pos * nd + i];
        size_t before = list.capacity();
        list.push_back(h);
        x.extra_bytes += (list.capacity() - before) * sizeof(uint64_t);
      }
    }
    if (l.mode == Mode::kCount) {
      while (s.tail - s.head > l.max_count) Pop();
    }
  }

  bool Expire(int64_t now) override {
    const WindowLayout& l = *l_;
    if (l.mode != Mode::kSliding) return false;
    bool changed = false;
    while (st_.tail > st_.head && SatAdd(st_.Ts(st_.Pos(st_.head), l.width), l.duration) <= now) {
      Pop();
      changed = true;
    }
    if (changed && st_.tail == st_.head) {
      // Empty again: the distinct counts are exact again, and a burst's storage goes back.
      if (st_.x != nullptr) std::fill(st_.x->overflow.begin(), st_.x->overflow.end(), false);
      if (st_.cap > 4 * kExactEntries) Clear();
    }
    return changed;
  }

  int64_t NextExpiry() const override {
    if (l_->mode != Mode::kSliding || st_.tail == st_.head) return kNever;
    return SatAdd(st_.Ts(st_.Pos(st_.head), l_->width), l_->duration);
  }

  void Clear() override {
    bool release = st_.cap > 4 * kExactEntries;
    if (st_.x != nullptr) {
      for (auto& t : st_.x->tables) release = release || t.capacity() > 1024;
    }
    if (release) {
      st_.Init(*l_);
    } else {
      st_.head = st_.tail = st_.boundary = 0;
      if (st_.x != nullptr) {
        Extra& x = *st_.x;
        std::fill(x.fl_seq.begin(), x.fl_seq.end(), kNoSeq);
        std::fill(x.overflow.begin(), x.overflow.end(), false);
        for (auto& t : x.tables) t.Clear(false);
      }
    }
    Identity(l_->num, st_.Back());
  }

  bool Empty() const override { return st_.tail == st_.head; }

  void PrefetchEntries() const override {
    const uint32_t width = l_->width;
    if (st_.buf == nullptr) return;
    Prefetch(st_.buf.get());  // the back aggregate, and the first cells
    if (st_.tail == st_.head) return;
    Prefetch(st_.Cell(st_.Pos(st_.tail - 1), width));
    Prefetch(st_.Cell(st_.Pos(st_.head), width));
  }

  void Results(std::span<Value> out) const override {
    const WindowLayout& l = *l_;
    const uint32_t width = l.width;
    const State& s = st_;
    // Numeric: front[head] ⊕ back, combined on the stack (a local vector only for wide rules).
    constexpr uint32_t kStackWidth = 32;
    double stack[kStackWidth];
    std::vector<double> wide;
    const double* total = s.Back();
    if (s.head < s.boundary) {
      double* tmp = stack;
      if (width > kStackWidth) {
        wide.resize(width);
        tmp = wide.data();
      }
      Combine(l.num, tmp, s.Agg(s.Pos(s.head), width), s.Back());
      total = tmp;
    }
    for (const NumSlot& ns : l.num) {
      if (ns.slot < out.size()) out[ns.slot] = NumResult(ns, total);
    }
    const size_t nfl = l.fl.size();
    for (size_t i = 0; i < nfl; ++i) {
      if (l.fl[i].slot >= out.size()) continue;
      uint64_t at = s.x->fl_seq[i];
      out[l.fl[i].slot] = at == kNoSeq ? Value::Missing() : s.x->fl[s.Pos(at) * nfl + i].view();
    }
    for (size_t i = 0; i < l.distinct.size(); ++i) {
      if (l.distinct[i] >= out.size()) continue;
      size_t n = s.x->tables[i].size();
      out[l.distinct[i]] = n == 0 ? Value::Missing() : Value::Number(static_cast<double>(n));
    }
  }

  void PrefetchDistinct(size_t i, const Value& v) const override {
    if (st_.x == nullptr || i >= st_.x->tables.size() || v.missing()) return;
    st_.x->tables[i].PrefetchFind(HashValue(v));
  }

  bool DistinctOverflow() const override {
    if (st_.x == nullptr) return false;
    for (bool b : st_.x->overflow) {
      if (b) return true;
    }
    return false;
  }

  // Format 2 (all integers little-endian; varint = LEB128, zigzag for signed; num = PutNum):
  //   u8 format (2),
  //   u8 overflow flag per count_distinct slot,
  //   varint entries E, varint front F (entries [0, F) hold suffix aggregates, F < E or F = 0),
  //   num × width: the back-stack aggregate,
  //   per entry: last_ts (zigzag for the first, varint delta after), num × width,
  //              per first/last slot a value (u8 type, then num | u8 | varint len + bytes),
  //              per count_distinct slot varint k + k × fixed64 hashes (those the entry is the
  //              newest holder of),
  //   fixed32: the low half of HashBytes(layout's state_tag, everything before it). The tag
  //   stands for the window's definition (kind, duration, count, resolution, slots), which
  //   format 1 wrote out in full: bytes of another definition fail the check.
  // Format 1 differs in: after the format byte, u8 kind, varint duration, varint count, varint
  // resolution, varint nslots, u8 func per slot; doubles (f64) where format 2 has nums; a
  // fixed64 HashBytes(kChecksumTag, ...) at the end.
  void Serialize(std::string* out) const override {
    const WindowLayout& l = *l_;
    const uint32_t width = l.width;
    const size_t nfl = l.fl.size(), nd = l.distinct.size();
    const State& s = st_;
    size_t start = out->size();
    out->push_back(static_cast<char>(kFormat2));
    if (s.x != nullptr) {
      for (bool b : s.x->overflow) out->push_back(b ? 1 : 0);
    }
    PutVarint(out, s.tail - s.head);
    PutVarint(out, s.boundary - s.head);
    for (uint32_t k = 0; k < width; ++k) PutNum(out, s.Back()[k]);
    int64_t prev = 0;
    for (uint64_t seq = s.head; seq < s.tail; ++seq) {
      uint64_t pos = s.Pos(seq);
      int64_t ts = s.Ts(pos, width);
      if (seq == s.head) PutZigzag(out, ts);
      else PutVarint(out, static_cast<uint64_t>(ts) - static_cast<uint64_t>(prev));
      prev = ts;
      const double* a = s.Agg(pos, width);
      for (uint32_t k = 0; k < width; ++k) PutNum(out, a[k]);
      for (size_t i = 0; i < nfl; ++i) PutOwned(out, s.x->fl[pos * nfl + i]);
      for (size_t i = 0; i < nd; ++i) {
        const std::vector<uint64_t>& list = s.x->dlist[pos * nd + i];
        const HashSeqTable& t = s.x->tables[i];
        size_t live = 0;
        if (l.mode == Mode::kAccumulate) {
          live = t.size();
        } else {
          for (uint64_t h : list) {
            const uint64_t* at = t.Find(h);
            if (at != nullptr && *at == seq) ++live;
          }
        }
        PutVarint(out, live);
        if (l.mode == Mode::kAccumulate) {
          // Accumulating windows keep no per-entry lists: the table is the single entry's set,
          // written sorted so that equal windows serialize to equal bytes.
          std::vector<uint64_t> keys;
          keys.reserve(t.size());
          t.ForEachKey([&keys](uint64_t h) { keys.push_back(h); });
          std::sort(keys.begin(), keys.end());
          for (uint64_t h : keys) PutFixed64(out, h);
        } else {
          for (uint64_t h : list) {
            const uint64_t* at = t.Find(h);
            if (at != nullptr && *at == seq) PutFixed64(out, h);
          }
        }
      }
    }
    PutFixed32(out, static_cast<uint32_t>(HashBytes(l.state_tag, out->data() + start, out->size() - start)));
  }

  bool Deserialize(std::string_view in) override {
    const WindowLayout& l = *l_;
    const uint32_t width = l.width;
    const size_t nfl = l.fl.size(), nd = l.distinct.size();
    if (in.empty()) return false;
    const auto format = static_cast<uint8_t>(in[0]);
    std::string_view body;
    if (format == kFormat2) {
      if (in.size() < 5) return false;
      body = in.substr(0, in.size() - 4);
      Reader cr(in.substr(in.size() - 4));
      uint32_t sum;
      if (!cr.Fixed32(&sum) ||
          sum != static_cast<uint32_t>(HashBytes(l.state_tag, body.data(), body.size())))
        return false;
    } else if (format == kFormat1) {
      if (in.size() < 9) return false;
      body = in.substr(0, in.size() - 8);
      Reader cr(in.substr(in.size() - 8));
      uint64_t sum;
      if (!cr.Fixed64(&sum) || sum != HashBytes(kChecksumTag, body.data(), body.size())) return false;
    } else {
      return false;
    }
    Reader r(body.substr(1));
    if (format == kFormat1) {
      uint8_t kind;
      int64_t duration, count, resolution;
      uint64_t nslots;
      if (!r.Byte(&kind) || kind != static_cast<uint8_t>(l.spec.kind)) return false;
      if (!r.Zigzag(&duration) || duration != l.spec.duration_ms) return false;
      if (!r.Zigzag(&count) || count != l.spec.count) return false;
      if (!r.Zigzag(&resolution) || resolution != l.spec.resolution_ms) return false;
      if (!r.Varint(&nslots) || nslots != l.slots.size()) return false;
      for (AggFunc f : l.slots) {
        uint8_t b;
        if (!r.Byte(&b) || b != static_cast<uint8_t>(f)) return false;
      }
    }
    State s;
    s.Init(l);
    for (size_t i = 0; i < nd; ++i) {
      uint8_t b;
      if (!r.Byte(&b) || b > 1) return false;
      s.x->overflow[i] = b == 1;
    }
    uint64_t entries, front;
    if (!r.Varint(&entries) || !r.Varint(&front)) return false;
    // Every entry takes at least one byte: bounds the allocation by the input size.
    if (entries > r.remaining()) return false;
    if (front > 0 && front >= entries) return false;
    if (l.mode == Mode::kCount && entries > l.max_count) return false;
    if (l.mode == Mode::kAccumulate && (entries > 1 || front != 0)) return false;
    for (uint32_t k = 0; k < width; ++k) {
      if (!r.Num(format, &s.Back()[k])) return false;
    }
    while (s.cap < entries) s.Grow(l);
    int64_t prev = 0;
    for (uint64_t seq = 0; seq < entries; ++seq) {
      uint64_t pos = s.Pos(seq);
      int64_t ts;
      if (seq == 0) {
        if (!r.Zigzag(&ts)) return false;
      } else {
        uint64_t delta;
        if (!r.Varint(&delta) || delta > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return false;
        if (__builtin_add_overflow(prev, static_cast<int64_t>(delta), &ts)) return false;
      }
      prev = ts;
      s.SetTs(pos, width, ts);
      double* a = s.Agg(pos, width);
      for (uint32_t k = 0; k < width; ++k) {
        if (!r.Num(format, &a[k])) return false;
      }
      for (size_t i = 0; i < nfl; ++i) {
        if (!GetOwned(&r, format, &s.x->fl[pos * nfl + i])) return false;
      }
      for (size_t i = 0; i < nd; ++i) {
        uint64_t k;
        if (!r.Varint(&k) || k > r.remaining() / 8) return false;
        std::vector<uint64_t>& list = s.x->dlist[pos * nd + i];
        HashSeqTable& t = s.x->tables[i];
        list.clear();
        for (uint64_t j = 0; j < k; ++j) {
          uint64_t h;
          if (!r.Fixed64(&h) || h == 0) return false;
          if (t.Find(h) != nullptr) return false;  // each hash has one newest holder
          if (t.size() >= kMaxDistinctPerWindow) return false;
          t.Insert(h, seq);
          if (l.mode != Mode::kAccumulate) list.push_back(h);
        }
      }
      s.tail = seq + 1;
    }
    if (r.remaining() != 0) return false;
    s.head = 0;
    s.tail = entries;
    s.boundary = front;
    if (s.x != nullptr) {
      Extra& x = *s.x;
      for (const OwnedValue& v : x.fl) x.extra_bytes += HeapBytes(v.str);
      for (const auto& list : x.dlist) x.extra_bytes += list.capacity() * sizeof(uint64_t);
      // first: oldest entry with a value; last: newest (the invariants Add/Pop maintain).
      for (size_t i = 0; i < nfl; ++i) {
        x.fl_seq[i] = kNoSeq;
        for (uint64_t k = 0; k < entries; ++k) {
          uint64_t seq = l.fl[i].func == AggFunc::kFirst ? k : entries - 1 - k;
          if (x.fl[s.Pos(seq) * nfl + i].type != Type::kMissing) {
            x.fl_seq[i] = seq;
            break;
          }
        }
      }
    }
    st_ = std::move(s);
    return true;
  }

  size_t MemoryBytes() const override {
    const State& s = st_;
    size_t bytes = sizeof(*this);
    if (s.buf != nullptr) bytes += State::Doubles(l_->width, s.cap) * sizeof(double);
    if (s.x != nullptr) {
      const Extra& x = *s.x;
      bytes += sizeof(Extra);
      bytes += x.fl.capacity() * sizeof(OwnedValue);
      bytes += x.dlist.capacity() * sizeof(std::vector<uint64_t>);
      bytes += x.extra_bytes;  // string and distinct-list buffers, kept up to date by Add
      for (const auto& t : x.tables) bytes += sizeof(HashSeqTable) + t.MemoryBytes();
      bytes += x.fl_seq.capacity() * sizeof(uint64_t) + x.overflow.capacity() / 8;
    }
    return bytes;
  }

 private:
  // Removes the oldest entry.
  void Pop() {
    const WindowLayout& l = *l_;
    State& s = st_;
    uint64_t seq = s.head;
    uint64_t pos = s.Pos(seq);
    const size_t nfl = l.fl.size(), nd = l.distinct.size();
    for (size_t i = 0; i < nd; ++i) {
      std::vector<uint64_t>& list = s.x->dlist[pos * nd + i];
      HashSeqTable& t = s.x->tables[i];
      for (uint64_t h : list) {
        uint64_t* at = t.Find(h);
        if (at != nullptr && *at == seq) t.Erase(h);
      }
      list.clear();
    }
    for (size_t i = 0; i < nfl; ++i) {
      Extra& x = *s.x;
      if (x.fl_seq[i] != seq) continue;
      x.fl_seq[i] = kNoSeq;
      if (l.fl[i].func == AggFunc::kFirst) {
        for (uint64_t next = seq + 1; next < s.tail; ++next) {
          if (x.fl[s.Pos(next) * nfl + i].type != Type::kMissing) {
            x.fl_seq[i] = next;
            break;
          }
        }
      }
    }
    if (s.head == s.boundary) {
      if (s.tail - s.head >= 2) {
        Flip();
      } else {  // popping the only entry, which sits in the back
        Identity(l.num, s.Back());
        s.boundary = s.tail;
      }
    }
    ++s.head;
    if (s.boundary < s.head) s.boundary = s.head;
  }

  // Front is empty: turns back entries [boundary, tail-1) into suffix aggregates; the last entry
  // stays in the back (events may still merge into it).
  void Flip() {
    const WindowLayout& l = *l_;
    const uint32_t width = l.width;
    State& s = st_;
    uint64_t last = s.tail - 1;
    std::copy_n(s.Agg(s.Pos(last), width), width, s.Back());
    // entry last-1 keeps its own partial (its suffix is itself); earlier ones fold forward.
    for (uint64_t seq = last - 1; seq-- > s.boundary;) {
      double* a = s.Agg(s.Pos(seq), width);
      Combine(l.num, a, a, s.Agg(s.Pos(seq + 1), width));
    }
    s.boundary = last;
  }

  const WindowLayout* l_;  // the rule's (or OwningWindow's), shared by every group of the rule
  State st_;
};

// A window with its own layout (Window::Make from a spec, for tests and tools). The layout is a
// base so that it is built before the EntryWindow that points at it.
struct LayoutHolder {
  LayoutHolder(const WindowSpec& spec, const std::vector<AggFunc>& slots)
      : own_layout(spec, slots) {}
  WindowLayout own_layout;
};

class OwningWindow final : private LayoutHolder, public EntryWindow {
 public:
  OwningWindow(const WindowSpec& spec, const std::vector<AggFunc>& slots)
      : LayoutHolder(spec, slots), EntryWindow(&own_layout) {}
};

}  // namespace

WindowLayout::WindowLayout(const WindowSpec& s, const std::vector<AggFunc>& funcs)
    : spec(s), slots(funcs) {
  switch (spec.kind) {
    case WindowSpec::Kind::kSliding: mode = Mode::kSliding; break;
    case WindowSpec::Kind::kCount: mode = Mode::kCount; break;
    default: mode = Mode::kAccumulate; break;
  }
  duration = std::max<int64_t>(0, spec.duration_ms);
  resolution = spec.resolution_ms > 0 ? spec.resolution_ms : DefaultResolution(duration);
  max_count = static_cast<uint64_t>(std::clamp<int64_t>(spec.count, 1, kMaxCountWindow));
  {
    // What format 1 wrote out in every window (format 2 checks it through its checksum).
    std::string def;
    def.push_back(static_cast<char>(spec.kind));
    PutZigzag(&def, spec.duration_ms);
    PutZigzag(&def, spec.count);
    PutZigzag(&def, spec.resolution_ms);
    for (AggFunc f : slots) def.push_back(static_cast<char>(f));
    state_tag = HashBytes(kChecksumTag, def.data(), def.size());
  }
  for (uint32_t i = 0; i < slots.size(); ++i) {
    AggFunc f = slots[i];
    uint32_t w = NumWidth(f);
    if (w > 0) {
      num.push_back({f, i, width});
      width += w;
    } else if (f == AggFunc::kFirst || f == AggFunc::kLast) {
      fl.push_back({f, i});
    } else if (f == AggFunc::kCountDistinct) {
      distinct.push_back(i);
    }
  }
}

int64_t DefaultResolution(int64_t duration_ms) {
  static constexpr int64_t kSteps[] = {1000, 500, 250, 200, 100, 50, 25, 20, 10, 5, 2, 1};
  for (int64_t step : kSteps) {
    if (step * 60 <= duration_ms) return step;
  }
  return 1;
}

std::unique_ptr<Window> Window::Make(const WindowLayout* layout) {
  if (layout == nullptr || layout->spec.kind == WindowSpec::Kind::kNone) return nullptr;
  return std::make_unique<EntryWindow>(layout);
}

static_assert(alignof(EntryWindow) <= Window::kInPlaceAlign);

size_t Window::InPlaceSize() { return sizeof(EntryWindow); }

Window* Window::MakeAt(void* mem, const WindowLayout* layout) {
  if (layout == nullptr || layout->spec.kind == WindowSpec::Kind::kNone) return nullptr;
  return new (mem) EntryWindow(layout);
}

std::unique_ptr<Window> Window::Make(const WindowSpec& spec, const std::vector<AggFunc>* slots) {
  if (spec.kind == WindowSpec::Kind::kNone || slots == nullptr) return nullptr;
  return std::make_unique<OwningWindow>(spec, *slots);
}

}  // namespace vigie::rules
