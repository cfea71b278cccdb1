// Windows and aggregates (rules/window.h): unit cases per window kind and aggregate, property tests
// against a reference that keeps every event, serialization round trips and corrupted input.
#include "rules/window.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <algorithm>
#include <string>
#include <vector>

namespace vigie::rules {
namespace {

using K = WindowSpec::Kind;

WindowSpec Sliding(int64_t d, int64_t res = 0) {
  WindowSpec s;
  s.kind = K::kSliding;
  s.duration_ms = d;
  s.resolution_ms = res;
  return s;
}
WindowSpec CountSpec(int64_t n) {
  WindowSpec s;
  s.kind = K::kCount;
  s.count = n;
  return s;
}
WindowSpec Accum(K kind, int64_t d) {
  WindowSpec s;
  s.kind = kind;
  s.duration_ms = d;
  return s;
}

Value N(double v) { return Value::Number(v); }
Value S(std::string_view v) { return Value::String(v); }
Value B(bool v) { return Value::Bool(v); }
Value M() { return Value::Missing(); }

std::string Render(const Value& v) {
  switch (v.type) {
    case Type::kMissing: return "-";
    case Type::kNumber: {
      std::string s;
      AppendNumber(&s, v.num);
      return s;
    }
    case Type::kString: return "\"" + std::string(v.str) + "\"";
    case Type::kBool: return v.b ? "true" : "false";
  }
  return "?";
}

// Results of every slot joined with spaces: tests compare rendered state.
std::string Results(const Window& w, size_t nslots) {
  std::vector<Value> out(nslots);
  w.Results(out);
  std::string s;
  for (size_t i = 0; i < nslots; ++i) {
    if (i) s += ' ';
    s += Render(out[i]);
  }
  return s;
}

const std::vector<AggFunc> kAll = {AggFunc::kCount, AggFunc::kSum,   AggFunc::kAvg,
                                   AggFunc::kMin,   AggFunc::kMax,   AggFunc::kFirst,
                                   AggFunc::kLast,  AggFunc::kStddev, AggFunc::kCountDistinct};

// Adds an event whose every slot argument is `v` (count()'s argument is Missing, as the engine
// passes it).
void AddAll(Window& w, int64_t ts, Value v) {
  std::vector<Value> args(kAll.size(), v);
  args[0] = M();
  w.Add(ts, args);
}

TEST_CASE("window: DefaultResolution picks the largest step <= D/60, at most 1s, at least 1ms", "[window]") {
  CHECK(DefaultResolution(60'000) == 1000);
  CHECK(DefaultResolution(3'600'000) == 1000);
  CHECK(DefaultResolution(59'999) == 500);
  CHECK(DefaultResolution(30'000) == 500);
  CHECK(DefaultResolution(15'000) == 250);
  CHECK(DefaultResolution(12'000) == 200);
  CHECK(DefaultResolution(3'000) == 50);
  CHECK(DefaultResolution(1'000) == 10);
  CHECK(DefaultResolution(120) == 2);
  CHECK(DefaultResolution(100) == 1);
  CHECK(DefaultResolution(0) == 1);
}

TEST_CASE("window: Make returns no window for kind none", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCount};
  CHECK(Window::Make(WindowSpec{}, &slots) == nullptr);
}

TEST_CASE("window: empty windows: count = sum = 0, the others have no value", "[window]") {
  for (WindowSpec spec : {Sliding(10'000), CountSpec(5), Accum(K::kTumbling, 1000),
                          Accum(K::kSession, 1000)}) {
    auto w = Window::Make(spec, &kAll);
    REQUIRE(w);
    CHECK(w->Empty());
    CHECK(Results(*w, kAll.size()) == "0 0 - - - - - - -");
    // A window whose events all lack the argument: same, but count counts the events.
    AddAll(*w, 1000, M());
    CHECK_FALSE(w->Empty());
    CHECK(Results(*w, kAll.size()) == "1 0 - - - - - - -");
  }
}

TEST_CASE("window: sliding: an event leaves exactly at ts + D", "[window]") {
  auto w = Window::Make(Sliding(10'000), &kAll);
  CHECK(w->NextExpiry() == kNever);
  AddAll(*w, 1'000, N(5));
  AddAll(*w, 2'500, N(7));
  CHECK(Results(*w, kAll.size()) == "2 12 6 5 7 5 7 1 2");
  CHECK(w->NextExpiry() == 11'000);
  CHECK_FALSE(w->Expire(10'999));
  CHECK(Results(*w, kAll.size()) == "2 12 6 5 7 5 7 1 2");
  CHECK(w->Expire(11'000));
  CHECK(Results(*w, kAll.size()) == "1 7 7 7 7 7 7 0 1");
  CHECK(w->NextExpiry() == 12'500);
  CHECK_FALSE(w->Expire(12'499));
  CHECK(w->Expire(12'500));
  CHECK(w->Empty());
  CHECK(w->NextExpiry() == kNever);
  CHECK(Results(*w, kAll.size()) == "0 0 - - - - - - -");
  CHECK_FALSE(w->Expire(100'000));
}

TEST_CASE("window: PrefetchEntries is a hint: empty, full, wrapped and grown rings read the same after it", "[window]") {
  for (const WindowSpec& spec : {Sliding(10'000), CountSpec(3), Accum(K::kTumbling, 60'000)}) {
    auto w = Window::Make(spec, &kAll);
    std::string serialized_before, serialized_after;
    w->PrefetchEntries();  // no entry, no buffer growth yet
    CHECK(Results(*w, kAll.size()) == "0 0 - - - - - - -");
    // 9 events: the count window wraps its ring, the sliding one grows past its first capacity.
    for (int i = 0; i < 9; ++i) {
      AddAll(*w, 1'000 + 100 * i, N(i));
      const std::string before = Results(*w, kAll.size());
      const int64_t next = w->NextExpiry();
      w->Serialize(&serialized_before);
      w->PrefetchEntries();
      w->Serialize(&serialized_after);
      CHECK(Results(*w, kAll.size()) == before);
      CHECK(w->NextExpiry() == next);
      CHECK(serialized_after == serialized_before);
      serialized_before.clear();
      serialized_after.clear();
    }
    CHECK_FALSE(w->Empty());
  }
}

TEST_CASE("window: PrefetchDistinct is a hint: any slot, value or state, the window reads the same", "[window]") {
  for (const WindowSpec& spec : {Sliding(10'000), CountSpec(3), Accum(K::kTumbling, 60'000)}) {
    auto w = Window::Make(spec, &kAll);
    // Before any table exists, past the last distinct slot, a missing value, a string.
    for (size_t i : {size_t{0}, size_t{1}, size_t{100}}) {
      w->PrefetchDistinct(i, N(1));
      w->PrefetchDistinct(i, M());
      w->PrefetchDistinct(i, S("loop-7"));
    }
    CHECK(Results(*w, kAll.size()) == "0 0 - - - - - - -");
    std::string before, after;
    for (int i = 0; i < 40; ++i) {  // the distinct table grows several times
      AddAll(*w, 1'000 + 100 * i, N(i % 17));
      const std::string results = Results(*w, kAll.size());
      w->Serialize(&before);
      for (int v = 0; v < 20; ++v) w->PrefetchDistinct(0, N(v));
      w->PrefetchDistinct(1, N(3));
      w->Serialize(&after);
      CHECK(Results(*w, kAll.size()) == results);
      CHECK(after == before);
      before.clear();
      after.clear();
    }
  }
}

TEST_CASE("window: sliding: min and max stay right when the entry holding the extremum leaves", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kMin, AggFunc::kMax};
  auto w = Window::Make(Sliding(1'000), &slots);
  std::vector<double> xs = {3, 9, 1, 7, 2, 8, 5};
  for (size_t i = 0; i < xs.size(); ++i) {
    Value a[2] = {N(xs[i]), N(xs[i])};
    w->Add(static_cast<int64_t>(i) * 100, a);
  }
  CHECK(Results(*w, 2) == "1 9");
  w->Expire(1'000);  // 3 leaves
  CHECK(Results(*w, 2) == "1 9");
  w->Expire(1'100);  // 9 leaves
  CHECK(Results(*w, 2) == "1 8");
  w->Expire(1'200);  // 1 leaves
  CHECK(Results(*w, 2) == "2 8");
  w->Expire(1'500);  // 7, 2, 8 leave
  CHECK(Results(*w, 2) == "5 5");
}

TEST_CASE("window: aggregates skip missing values and, for numeric ones, non-numbers", "[window]") {
  auto w = Window::Make(Accum(K::kTumbling, 60'000), &kAll);
  AddAll(*w, 1, M());
  AddAll(*w, 2, S("x"));
  AddAll(*w, 3, N(2));
  AddAll(*w, 4, B(true));
  AddAll(*w, 5, N(4));
  AddAll(*w, 6, M());
  // count counts events; numbers 2 and 4; first/last over any value; 4 distinct values.
  CHECK(Results(*w, kAll.size()) == "6 6 3 2 4 \"x\" 4 1 4");
}

TEST_CASE("window: first and last keep owned copies of strings, booleans and numbers", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kFirst, AggFunc::kLast};
  auto w = Window::Make(Sliding(1'000), &slots);
  std::string s = "a fairly long string that is not in the small-string buffer";
  {
    Value a[2] = {S(s), S(s)};
    w->Add(0, a);
  }
  s.assign(s.size(), '#');  // the caller's storage changes: the window kept a copy
  {
    Value a[2] = {B(false), M()};
    w->Add(100, a);
  }
  {
    Value a[2] = {M(), B(true)};
    w->Add(200, a);
  }
  CHECK(Results(*w, 2) ==
        "\"a fairly long string that is not in the small-string buffer\" true");
  w->Expire(1'000);
  CHECK(Results(*w, 2) == "false true");
  w->Expire(1'100);
  CHECK(Results(*w, 2) == "- true");  // the remaining event has no value for first's argument
  {
    Value a[2] = {N(3), M()};
    w->Add(300, a);
  }
  CHECK(Results(*w, 2) == "3 true");
  w->Expire(1'200);
  CHECK(Results(*w, 2) == "3 -");
}

TEST_CASE("window: count_distinct is type-aware", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCountDistinct};
  auto w = Window::Make(Sliding(10'000), &slots);
  auto add = [&](int64_t ts, Value v) { w->Add(ts, std::span<const Value>(&v, 1)); };
  add(0, N(1));
  add(1, S("1"));
  add(2, B(true));
  add(3, N(1.0));
  add(4, S("1"));
  add(5, N(0));
  add(6, N(-0.0));  // same number as 0
  add(7, B(false));
  add(8, S(""));
  add(9, M());
  CHECK(Results(*w, 1) == "6");
  w->Expire(10'000);  // N(1) at 0 leaves, but another 1 is still there
  CHECK(Results(*w, 1) == "6");
  w->Expire(10'002);  // "1" at 1 and true left; 1, "1", 0, false, "" remain
  CHECK(Results(*w, 1) == "5");
  w->Expire(10'003);  // the number 1 left
  CHECK(Results(*w, 1) == "4");
  w->Expire(10'004);  // the string "1" left
  CHECK(Results(*w, 1) == "3");
  w->Expire(10'008);
  CHECK(Results(*w, 1) == "-");  // only an event without a value is left
  CHECK_FALSE(w->Empty());
}

TEST_CASE("window: count_distinct stops tracking at kMaxDistinctPerWindow and says so", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCountDistinct, AggFunc::kCount};
  auto w = Window::Make(Accum(K::kSession, 60'000), &slots);
  const size_t total = kMaxDistinctPerWindow + 10;
  for (size_t i = 0; i < total; ++i) {
    Value a[2] = {N(static_cast<double>(i)), M()};
    w->Add(1, a);
    if (i + 1 == kMaxDistinctPerWindow) CHECK_FALSE(w->DistinctOverflow());
  }
  CHECK(w->DistinctOverflow());
  CHECK(Results(*w, 2) == std::to_string(kMaxDistinctPerWindow) + " " + std::to_string(total));
  {
    Value a[2] = {N(5), M()};  // already tracked values still count once
    w->Add(2, a);
  }
  CHECK(Results(*w, 2) == std::to_string(kMaxDistinctPerWindow) + " " + std::to_string(total + 1));
  w->Clear();
  CHECK_FALSE(w->DistinctOverflow());
  CHECK(Results(*w, 2) == "- 0");
}

TEST_CASE("window: count window: the last N events, fewer before the group has N", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCount, AggFunc::kSum, AggFunc::kMin, AggFunc::kMax,
                                AggFunc::kFirst, AggFunc::kLast};
  auto w = Window::Make(CountSpec(3), &slots);
  auto add = [&](double x) {
    std::vector<Value> a(slots.size(), N(x));
    w->Add(0, a);
  };
  add(9);
  CHECK(Results(*w, slots.size()) == "1 9 9 9 9 9");
  add(1);
  CHECK(Results(*w, slots.size()) == "2 10 1 9 9 1");
  add(5);
  CHECK(Results(*w, slots.size()) == "3 15 1 9 9 5");
  add(4);  // 9 leaves
  CHECK(Results(*w, slots.size()) == "3 10 1 5 1 4");
  add(6);  // 1 leaves
  CHECK(Results(*w, slots.size()) == "3 15 4 6 5 6");
  CHECK_FALSE(w->Expire(kNever - 1));
  CHECK(w->NextExpiry() == kNever);
}

TEST_CASE("window: tumbling and session windows accumulate until cleared", "[window]") {
  for (K kind : {K::kTumbling, K::kSession}) {
    auto w = Window::Make(Accum(kind, 1'000), &kAll);
    for (int i = 0; i < 100; ++i) AddAll(*w, i * 1'000, N(i));
    CHECK(w->NextExpiry() == kNever);
    CHECK_FALSE(w->Expire(1'000'000));
    CHECK(Results(*w, kAll.size()) == "100 4950 49.5 0 99 0 99 28.86607004772212 100");
    w->Clear();
    CHECK(w->Empty());
    CHECK(Results(*w, kAll.size()) == "0 0 - - - - - - -");
    AddAll(*w, 5, N(2));
    CHECK(Results(*w, kAll.size()) == "1 2 2 2 2 2 2 0 1");
  }
}

TEST_CASE("window: sums never drift: no subtraction when events leave", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kSum, AggFunc::kAvg};
  auto w = Window::Make(Sliding(1'000), &slots);
  Value big[2] = {N(1e20), N(1e20)};
  Value one[2] = {N(1), N(1)};
  w->Add(0, big);
  w->Add(10, one);
  w->Expire(1'000);
  CHECK(Results(*w, 2) == "1 1");
}

// ---------------------------------------------------------------------------------------------
// Reference: every event with its time; aggregates computed exactly over a range of events.

struct Ev {
  int64_t ts;
  std::vector<OwnedValue> args;
  std::vector<std::string> keys;  // DistinctKey of each argument, computed once
};

std::string DistinctKey(const Value& v) {
  switch (v.type) {
    case Type::kNumber: {
      double d = v.num == 0 ? 0.0 : v.num;
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      return "n" + std::to_string(bits);
    }
    case Type::kString: return "s" + std::string(v.str);
    case Type::kBool: return v.b ? "bt" : "bf";
    default: return "";
  }
}

std::vector<Value> Reference(const std::vector<AggFunc>& slots, const std::vector<Ev>& evs,
                             size_t from, size_t to) {
  std::vector<Value> out(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    std::vector<double> nums;
    Value first, last;
    for (size_t k = from; k < to; ++k) {
      Value v = evs[k].args[i].view();
      if (v.is_number()) nums.push_back(v.num);
      if (!v.missing()) {
        if (first.missing()) first = v;
        last = v;
      }
    }
    double sum = 0;
    for (double x : nums) sum += x;
    switch (slots[i]) {
      case AggFunc::kCount: out[i] = N(static_cast<double>(to - from)); break;
      case AggFunc::kSum: out[i] = N(sum); break;
      case AggFunc::kAvg: out[i] = nums.empty() ? M() : N(sum / nums.size()); break;
      case AggFunc::kMin:
        out[i] = nums.empty() ? M() : N(*std::min_element(nums.begin(), nums.end()));
        break;
      case AggFunc::kMax:
        out[i] = nums.empty() ? M() : N(*std::max_element(nums.begin(), nums.end()));
        break;
      case AggFunc::kFirst: out[i] = first; break;
      case AggFunc::kLast: out[i] = last; break;
      case AggFunc::kStddev: {  // two-pass
        if (nums.empty()) {
          out[i] = M();
          break;
        }
        double mean = sum / nums.size(), ss = 0;
        for (double x : nums) ss += (x - mean) * (x - mean);
        out[i] = N(std::sqrt(ss / nums.size()));
        break;
      }
      case AggFunc::kCountDistinct: {
        std::vector<std::string_view> keys;
        for (size_t k = from; k < to; ++k) {
          if (!evs[k].args[i].view().missing()) keys.push_back(evs[k].keys[i]);
        }
        std::sort(keys.begin(), keys.end());
        size_t n = static_cast<size_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
        out[i] = n == 0 ? M() : N(static_cast<double>(n));
        break;
      }
    }
  }
  return out;
}

// Empty if equal: exact for everything but stddev (1e-9 relative, or absolute near 0). Values in
// these tests are multiples of 1/8 below 2^20, so sums and averages are exact in any order.
std::string Diff(const std::vector<AggFunc>& slots, const std::vector<Value>& got,
                 const std::vector<Value>& want) {
  for (size_t i = 0; i < slots.size(); ++i) {
    const Value& g = got[i];
    const Value& w = want[i];
    bool same = g.type == w.type;
    if (same && g.is_number()) {
      same = slots[i] == AggFunc::kStddev
                 ? std::fabs(g.num - w.num) <= 1e-9 * std::max(1.0, std::fabs(w.num))
                 : g.num == w.num;
    } else if (same && g.is_string()) {
      same = g.str == w.str;
    } else if (same && g.is_bool()) {
      same = g.b == w.b;
    }
    if (!same) return "slot " + std::to_string(i) + ": got " + Render(g) + ", want " + Render(w);
  }
  return "";
}

// Bitwise equality of two windows' observable state (round trips must be exact).
std::string Twin(const Window& a, const Window& b, size_t nslots) {
  std::vector<Value> ra(nslots), rb(nslots);
  a.Results(ra);
  b.Results(rb);
  for (size_t i = 0; i < nslots; ++i) {
    bool same = ra[i].type == rb[i].type && ra[i].b == rb[i].b && ra[i].str == rb[i].str &&
                std::memcmp(&ra[i].num, &rb[i].num, sizeof(double)) == 0;
    if (!same) return "slot " + std::to_string(i) + ": " + Render(ra[i]) + " vs " + Render(rb[i]);
  }
  if (a.NextExpiry() != b.NextExpiry()) return "next expiry differs";
  if (a.Empty() != b.Empty()) return "empty differs";
  if (a.DistinctOverflow() != b.DistinctOverflow()) return "overflow differs";
  return "";
}

const std::vector<AggFunc> kPropSlots = {
    AggFunc::kCount,  AggFunc::kSum,   AggFunc::kAvg,  AggFunc::kMin,
    AggFunc::kMax,    AggFunc::kStddev, AggFunc::kFirst, AggFunc::kLast,
    AggFunc::kCountDistinct, AggFunc::kCountDistinct, AggFunc::kFirst, AggFunc::kLast};
const char* const kWords[] = {"a", "b", "c", "1", "2", "dd", "a much longer street name, avenue"};

// Random arguments: slots 1..5 share a number (sometimes missing or a string), slots 6..8 a
// mixed-type value, slot 9 the number, slots 10..11 sparse values.
std::vector<OwnedValue> RandomArgs(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> pct(0, 99);
  std::uniform_int_distribution<int> num(-8000, 8000);
  Value x = N(num(rng) / 8.0);
  int p = pct(rng);
  if (p < 10) x = M();
  else if (p < 15) x = S("12");
  Value y;
  int q = pct(rng);
  if (q < 40) y = S(kWords[pct(rng) % 7]);
  else if (q < 60) y = N(pct(rng) % 5);
  else if (q < 70) y = B(pct(rng) % 2 == 0);
  else if (q < 90) y = M();
  else y = N(num(rng) / 8.0);
  Value z = pct(rng) < 95 ? M() : S(kWords[pct(rng) % 7]);
  std::vector<OwnedValue> args(kPropSlots.size());
  for (size_t i = 1; i <= 5; ++i) args[i].Assign(x);
  for (size_t i = 6; i <= 8; ++i) args[i].Assign(y);
  args[9].Assign(x);
  args[10].Assign(z);
  args[11].Assign(z);
  return args;
}

struct Driver {
  std::vector<AggFunc> slots = kPropSlots;
  WindowSpec spec;
  std::unique_ptr<Window> w;
  std::unique_ptr<Window> twin;  // restored from w's serialized form at random points
  std::vector<Ev> evs;
  std::mt19937_64 rng{12345};
  int round_trips = 0;
  int late_checks = 0;
  int skipped = 0;
  size_t ref_cursor = 0;  // checks where merged panes kept events past ts + D (within r)

  explicit Driver(WindowSpec s) : spec(s), w(Window::Make(s, &slots)) {}

  void Add(int64_t ts) {
    Ev e{ts, RandomArgs(rng), {}};
    for (const OwnedValue& v : e.args) e.keys.push_back(DistinctKey(v.view()));
    std::vector<Value> a(slots.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = e.args[i].view();
    w->Add(ts, a);
    if (twin) twin->Add(ts, a);
    evs.push_back(std::move(e));
  }
  bool Expire(int64_t now) {
    bool changed = w->Expire(now);
    if (twin) REQUIRE(twin->Expire(now) == changed);
    return changed;
  }
  std::vector<Value> Results() const {
    std::vector<Value> out(slots.size());
    w->Results(out);
    return out;
  }
  void MaybeRoundTrip() {
    if (twin) {
      std::string err = Twin(*w, *twin, slots.size());
      INFO(err);
      REQUIRE(err.empty());
    }
    if (rng() % 97 != 0) return;
    std::string bytes;
    w->Serialize(&bytes);
    twin = Window::Make(spec, &slots);
    REQUIRE(twin->Deserialize(bytes));
    std::string again;
    twin->Serialize(&again);
    REQUIRE((again == bytes));
    ++round_trips;
    std::string err = Twin(*w, *twin, slots.size());
    INFO(err);
    REQUIRE(err.empty());
  }
};

// Checks the sliding window content at T against the reference. The window's content is always a
// suffix of the stream, events [j, end) (entries leave oldest first). The reference content at T
// is [ref_j, end) with ref_j the first event with ts > T - D. Allowed: j <= ref_j (nothing leaves
// early) and every event in [j, ref_j) has ts > T - D - r, i.e. it is late by less than the
// resolution r (T < ts + D + r). With exact = true, j == ref_j. Every aggregate must then equal
// the reference over [j, end).
void CheckSliding(Driver& d, int64_t T, int64_t D, int64_t r, bool exact) {
  std::vector<Value> got = d.Results();
  REQUIRE(got[0].is_number());
  size_t c = static_cast<size_t>(got[0].num);
  REQUIRE(c <= d.evs.size());
  size_t j = d.evs.size() - c;
  // Check instants never go back, so the first event inside the reference window only advances.
  size_t& ref_j = d.ref_cursor;
  while (ref_j < d.evs.size() && d.evs[ref_j].ts <= T - D) ++ref_j;
  INFO("T=" << T << " j=" << j << " ref_j=" << ref_j);
  if (exact) {
    REQUIRE(j == ref_j);
  } else {
    REQUIRE(j <= ref_j);
    for (size_t k = j; k < ref_j; ++k) REQUIRE(d.evs[k].ts > T - D - r);
    if (j < ref_j) ++d.late_checks;
  }
  // The full comparison costs O(content); over big windows (bursts) do it on one check in 8.
  if (c <= 150 || ++d.skipped % 8 == 0) {
    std::string err = Diff(d.slots, got, Reference(d.slots, d.evs, j, d.evs.size()));
    INFO(err);
    REQUIRE(err.empty());
  }
  CHECK(d.w->NextExpiry() > T);
  CHECK(d.w->Empty() == (c == 0));
}

// Runs the engine's schedule: before an event at te, fire every expiry due at or before te at its
// own instant, checking after each. Also look at the window at up to 3 random instants
// between two events (as when another rule's timer fires), where a merged pane may be late.
void RunSliding(Driver& d, int64_t D, int64_t r, bool exact, const std::vector<int64_t>& times) {
  auto advance_to = [&](int64_t T) {
    while (d.w->NextExpiry() <= T) {
      int64_t at = d.w->NextExpiry();
      REQUIRE(d.Expire(at));
      CheckSliding(d, at, D, r, exact);
      d.MaybeRoundTrip();
    }
    d.Expire(T);
    CheckSliding(d, T, D, r, exact);
  };
  int64_t now = times.front();
  for (int64_t te : times) {
    for (int probes = static_cast<int>(d.rng() % 4); probes > 0 && te > now; --probes) {
      now += static_cast<int64_t>(d.rng() % (te - now));
      advance_to(now);
    }
    advance_to(te);
    d.Add(te);
    now = te;
    CheckSliding(d, te, D, r, exact);
    d.MaybeRoundTrip();
  }
  // Drain: everything leaves, the window ends empty with count 0 and sum 0.
  while (d.w->NextExpiry() != kNever) {
    int64_t at = d.w->NextExpiry();
    REQUIRE(d.Expire(at));
    CheckSliding(d, at, D, r, exact);
  }
  CHECK(d.w->Empty());
  CHECK(d.Results()[0].num == 0);
}

TEST_CASE("window: sliding: a fast group's events merge into panes and leave with the pane's latest", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCount, AggFunc::kFirst};
  auto w = Window::Make(Sliding(60'000), &slots);  // r = 1000
  auto add = [&](int64_t ts) {
    Value a[2] = {M(), N(static_cast<double>(ts))};
    w->Add(ts, a);
  };
  for (int i = 0; i < 32; ++i) add(1'000 + i);  // 32 exact entries: 1000..1031
  add(1'032);  // 32 entries now: joins 1031's entry, same pane (1000, 2000]
  add(2'001);  // pane (2000, 3000]: a new entry
  add(2'500);  // merges
  add(2'999);  // merges
  add(3'001);  // a new pane
  CHECK(w->NextExpiry() == 61'000);
  w->Expire(61'031);  // 1000..1030 left exactly at ts + D
  CHECK(Results(*w, 2) == "6 1031");
  CHECK(w->NextExpiry() == 61'032);  // 1031 left late, with 1032
  w->Expire(61'032);
  CHECK(Results(*w, 2) == "4 2001");
  CHECK(w->NextExpiry() == 62'999);  // 2001 and 2500 are late by less than r
  CHECK_FALSE(w->Expire(62'998));
  CHECK(Results(*w, 2) == "4 2001");
  CHECK(w->Expire(62'999));
  CHECK(Results(*w, 2) == "1 3001");
}

TEST_CASE("window: property: slow sliding streams equal the reference exactly", "[window]") {
  const int64_t D = 10'000;
  Driver d(Sliding(D));
  std::vector<int64_t> times;
  int64_t t = 1'700'000'000'000;
  std::uniform_int_distribution<int64_t> gap(400, 3'000);  // < 32 events per window
  std::uniform_int_distribution<int> pct(0, 99);
  for (int i = 0; i < 5'000; ++i) {
    t += pct(d.rng) < 3 ? 20'000 : gap(d.rng);  // sometimes the window empties
    times.push_back(t);
  }
  RunSliding(d, D, DefaultResolution(D), /*exact=*/true, times);
  CHECK(d.round_trips > 20);
}

TEST_CASE("window: property: bursty sliding streams merge panes within the tolerance", "[window]") {
  for (int64_t res : {int64_t{0}, int64_t{7}}) {
    const int64_t D = 60'000;
    const int64_t r = res > 0 ? res : DefaultResolution(D);
    Driver d(Sliding(D, res));
    std::vector<int64_t> times;
    int64_t t = -5'000;  // negative times too (pane arithmetic)
    std::uniform_int_distribution<int> pct(0, 99);
    std::uniform_int_distribution<int64_t> small(0, 3), spread(0, 25), slow(200, 5'000),
        burst(20, 250);
    for (int i = 0; i < 8'000;) {
      int p = pct(d.rng);
      if (p < 8) {  // a burst: many events, often many in the same millisecond
        int n = static_cast<int>(burst(d.rng));
        bool dense = p < 4;
        for (int k = 0; k < n; ++k, ++i) {
          t += dense ? small(d.rng) : spread(d.rng);
          times.push_back(t);
        }
      } else {
        t += p < 10 ? 70'000 : slow(d.rng);
        times.push_back(t);
        ++i;
      }
    }
    RunSliding(d, D, r, /*exact=*/false, times);
    CHECK(d.round_trips > 20);
    INFO("late checks " << d.late_checks);
    CHECK(d.late_checks > (r >= 1000 ? 100 : 3));  // panes did merge: the property was exercised
  }
}

TEST_CASE("window: property: a fast sliding window's memory is bounded by its panes", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kCount, AggFunc::kAvg, AggFunc::kMax};
  const int64_t D = 60'000;
  auto w = Window::Make(Sliding(D), &slots);
  Value a[3] = {M(), N(1), N(2)};
  size_t at_one_window = 0;
  for (int64_t t = 0; t < 10 * D; t += 2) {  // 500 events/s for 10 windows
    w->Expire(t);
    w->Add(t, a);
    if (t == D) at_one_window = w->MemoryBytes();
  }
  size_t after = w->MemoryBytes();
  CHECK(after == at_one_window);
  // About D/r + kExactEntries entries of 5 doubles and a time: well under 16 KiB.
  CHECK(after < 16 * 1024);
  std::vector<Value> out(3);
  w->Results(out);
  // Panes lag by < 1s: the count is the reference 30000 plus at most a pane of 500 events.
  CHECK(out[0].num >= 30'000);
  CHECK(out[0].num <= 30'500);
}

TEST_CASE("window: MemoryBytes counts the strings first/last keep, and drops them on Clear", "[window]") {
  std::vector<AggFunc> slots = {AggFunc::kLast};
  auto w = Window::Make(Accum(K::kSession, 1'000), &slots);
  size_t empty = w->MemoryBytes();
  std::string big(10'000, 'x');
  Value a = S(big);
  w->Add(0, std::span<const Value>(&a, 1));
  CHECK(w->MemoryBytes() >= empty + 10'000);
  CHECK(Results(*w, 1).size() == 10'002);
}

TEST_CASE("window: property: count windows hold exactly the last N events", "[window]") {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{50}}) {
    Driver d(CountSpec(n));
    int64_t t = 0;
    for (int i = 0; i < 4'000; ++i) {
      t += static_cast<int64_t>(d.rng() % 1000);
      d.Add(t);
      size_t from = d.evs.size() > static_cast<size_t>(n) ? d.evs.size() - n : 0;
      std::string err = Diff(d.slots, d.Results(), Reference(d.slots, d.evs, from, d.evs.size()));
      INFO("n=" << n << " i=" << i << " " << err);
      REQUIRE(err.empty());
      d.MaybeRoundTrip();
    }
    CHECK(d.round_trips > 10);
  }
}

TEST_CASE("window: property: tumbling windows equal the reference over the period", "[window]") {
  Driver d(Accum(K::kTumbling, 10'000));
  size_t from = 0;
  int64_t t = 0;
  for (int i = 0; i < 4'000; ++i) {
    t += static_cast<int64_t>(d.rng() % 700);
    if (i % 300 == 299) {  // the engine closes a period
      d.w->Clear();
      if (d.twin) d.twin->Clear();
      from = d.evs.size();
    }
    d.Add(t);
    std::string err = Diff(d.slots, d.Results(), Reference(d.slots, d.evs, from, d.evs.size()));
    INFO(err);
    REQUIRE(err.empty());
    d.MaybeRoundTrip();
  }
  CHECK(d.round_trips > 10);
}

// ---------------------------------------------------------------------------------------------
// Durable form.

std::string SampleBytes(const WindowSpec& spec, int events) {
  auto w = Window::Make(spec, &kPropSlots);
  std::mt19937_64 rng(7);
  for (int i = 0; i < events; ++i) {
    std::vector<OwnedValue> args = RandomArgs(rng);
    std::vector<Value> a(args.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = args[k].view();
    w->Add(i * 10, a);
  }
  std::string bytes;
  w->Serialize(&bytes);
  return bytes;
}

TEST_CASE("window: deserialize rejects truncated, corrupted and mismatched input and keeps its state", "[window]") {
  for (WindowSpec spec : {Sliding(10'000), CountSpec(20), Accum(K::kSession, 5'000)}) {
    std::string bytes = SampleBytes(spec, 60);
    auto w = Window::Make(spec, &kPropSlots);
    AddAll(*w, 1, N(42));  // (kAll and kPropSlots both start with count)
    std::string before = Results(*w, kPropSlots.size());
    for (size_t n = 0; n < bytes.size(); ++n) {
      REQUIRE_FALSE(w->Deserialize(std::string_view(bytes).substr(0, n)));
    }
    std::mt19937_64 rng(99);
    for (size_t i = 0; i < bytes.size(); ++i) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 + rng() % 255));
      REQUIRE_FALSE(w->Deserialize(bad));
    }
    for (int i = 0; i < 2'000; ++i) {
      std::string junk(rng() % 200, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      if (i % 2 == 0 && junk.size() > 2) junk[0] = 1;  // looks like our format byte
      REQUIRE_FALSE(w->Deserialize(junk));
    }
    REQUIRE_FALSE(w->Deserialize(bytes + "x"));
    CHECK(Results(*w, kPropSlots.size()) == before);  // failed loads change nothing
    REQUIRE(w->Deserialize(bytes));
  }
  // Another window definition (duration, kind or slots) does not load.
  std::string bytes = SampleBytes(Sliding(10'000), 10);
  CHECK_FALSE(Window::Make(Sliding(20'000), &kPropSlots)->Deserialize(bytes));
  CHECK_FALSE(Window::Make(Sliding(10'000, 5), &kPropSlots)->Deserialize(bytes));
  CHECK_FALSE(Window::Make(Accum(K::kTumbling, 10'000), &kPropSlots)->Deserialize(bytes));
  CHECK_FALSE(Window::Make(Sliding(10'000), &kAll)->Deserialize(bytes));
  CHECK(Window::Make(Sliding(10'000), &kPropSlots)->Deserialize(bytes));
}

TEST_CASE("window: serialized form starts with the format byte (2)", "[window]") {
  std::string bytes = SampleBytes(CountSpec(5), 3);
  REQUIRE(bytes.size() > 2);
  CHECK(bytes[0] == 2);
  std::string empty;
  Window::Make(Sliding(1'000), &kPropSlots)->Serialize(&empty);
  CHECK(empty.size() < 200);
}


std::string FromHex(const char* hex) {
  std::string out;
  for (size_t i = 0; hex[i] != 0 && hex[i + 1] != 0; i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  }
  return out;
}

// Format 1, written by the window code before WindowLayout (commit 9af5557) and up to 8ca9379:
// the durable form is in RocksDB, so these bytes must still load, to the same content.
const std::vector<AggFunc> kGoldenSlots = {AggFunc::kCount, AggFunc::kFirst, AggFunc::kAvg,
                                           AggFunc::kCountDistinct, AggFunc::kLast, AggFunc::kMax,
                                           AggFunc::kStddev};
std::string GoldenFormat1(bool sliding) {
  const char* hex = sliding ?
      "0101a09c0100000700050208060407000704000000000000084000000000000000400000000000803a400000"
      "0000000000400000000000002d4000000000000000400000000000802a400000000000000940c03e00000000"
      "00001040000000000000f03f0000000000001240000000000000f03f0000000000001240000000000000f03f"
      "0000000000001240000000000000000002226120737472696e67206c6f6e676572207468616e207369787465"
      "656e20627974657302226120737472696e67206c6f6e676572207468616e207369787465656e206279746573"
      "00dc0b0000000000000840000000000000f03f0000000000001240000000000000f03f000000000000124000"
      "0000000000f03f000000000000124000000000000000000100000000000012400100000000000012400136f9"
      "30c9f4fe0028dc0b000000000000004000000000000000000000000000000000000000000000000000000000"
      "0000f0ff0000000000000000000000000000000000000000000000000301030101c8f439bd297b5431dc0b00"
      "0000000000f03f000000000000000000000000000000000000000000000000000000000000f0ff0000000000"
      "0000000000000000000000000000000000000002226120737472696e67206c6f6e676572207468616e207369"
      "787465656e20627974657302226120737472696e67206c6f6e676572207468616e207369787465656e206279"
      "74657300dc0b000000000000f03f000000000000f03f0000000000002840000000000000f03f000000000000"
      "2840000000000000f03f00000000000028400000000000000000010000000000002840010000000000002840"
      "018e625bc1ce222fb0dc0b000000000000f03f000000000000f03f0000000000002d40000000000000f03f00"
      "00000000002d40000000000000f03f0000000000002d400000000000000000010000000000002d4001000000"
      "0000002d4001a8f99af47c6a12d4dc0b000000000000f03f0000000000000000000000000000000000000000"
      "00000000000000000000f0ff0000000000000000000000000000000000000000000000000222612073747269"
      "6e67206c6f6e676572207468616e207369787465656e20627974657302226120737472696e67206c6f6e6765"
      "72207468616e207369787465656e20627974657301b8909b87048448e7cec7432b0a3ba310"
      :
      "01040008000700050208060407000403000000000000f03f0000000000000000000000000000000000000000"
      "00000000000000000000f0ff000000000000000000000000000000000000000000000000e884010000000000"
      "00084000000000000000400000000000803a4000000000000000400000000000002d40000000000000004000"
      "00000000802a40000000000000094002226120737472696e67206c6f6e676572207468616e20736978746565"
      "6e20627974657302226120737472696e67206c6f6e676572207468616e207369787465656e20627974657300"
      "dc0b000000000000004000000000000000400000000000803a4000000000000000400000000000002d400000"
      "0000000000400000000000802a400000000000000940010000000000002840010000000000002840018e625b"
      "c1ce222fb0dc0b000000000000f03f000000000000f03f0000000000002d40000000000000f03f0000000000"
      "002d40000000000000f03f0000000000002d400000000000000000010000000000002d40010000000000002d"
      "4001a8f99af47c6a12d4dc0b000000000000f03f000000000000000000000000000000000000000000000000"
      "000000000000f0ff00000000000000000000000000000000000000000000000002226120737472696e67206c"
      "6f6e676572207468616e207369787465656e20627974657302226120737472696e67206c6f6e676572207468"
      "616e207369787465656e20627974657301b8909b87048448e731f1f11981327c07";
  return FromHex(hex);
}

// The same events written in format 2 (commit after 8ca9379): pinned, as format 1 was.
std::string GoldenFormat2(bool sliding) {
  const char* hex = sliding ?
      "020007040c08010000000000803a4008010000000000002d4008010000000000802a40010000000000000940"
      "c03e100401000000000000124004010000000000001240040100000000000012400002226120737472696e67"
      "206c6f6e676572207468616e207369787465656e20627974657302226120737472696e67206c6f6e67657220"
      "7468616e207369787465656e20627974657300dc0b0c04010000000000001240040100000000000012400401"
      "00000000000012400001010000000000001240010100000000000012400136f930c9f4fe0028dc0b08000000"
      "01000000000000f0ff0000000301030101c8f439bd297b5431dc0b0400000001000000000000f0ff00000002"
      "226120737472696e67206c6f6e676572207468616e207369787465656e20627974657302226120737472696e"
      "67206c6f6e676572207468616e207369787465656e20627974657300dc0b040430043004300001300130018e"
      "625bc1ce222fb0dc0b0404010000000000002d4004010000000000002d4004010000000000002d4000010100"
      "00000000002d4001010000000000002d4001a8f99af47c6a12d4dc0b0400000001000000000000f0ff000000"
      "02226120737472696e67206c6f6e676572207468616e207369787465656e2062797465730222612073747269"
      "6e67206c6f6e676572207468616e207369787465656e20627974657301b8909b87048448e714466ea3"
      :
      "020004030400000001000000000000f0ff000000e884010c08010000000000803a4008010000000000002d40"
      "08010000000000802a4001000000000000094002226120737472696e67206c6f6e676572207468616e207369"
      "787465656e20627974657302226120737472696e67206c6f6e676572207468616e207369787465656e206279"
      "74657300dc0b0808010000000000803a4008010000000000002d4008010000000000802a4001000000000000"
      "094001300130018e625bc1ce222fb0dc0b0404010000000000002d4004010000000000002d40040100000000"
      "00002d400001010000000000002d4001010000000000002d4001a8f99af47c6a12d4dc0b0400000001000000"
      "000000f0ff00000002226120737472696e67206c6f6e676572207468616e207369787465656e206279746573"
      "02226120737472696e67206c6f6e676572207468616e207369787465656e20627974657301b8909b87048448"
      "e7e4d4ce83";
  return FromHex(hex);
}

TEST_CASE("window: the durable form is unchanged (golden bytes); format 1 still loads", "[window]") {
  for (bool sliding : {true, false}) {
    INFO("sliding " << sliding);
    WindowSpec spec = sliding ? Sliding(10'000) : CountSpec(4);
    auto w = Window::Make(spec, &kGoldenSlots);
    const char* names[] = {"lamp-1", "lamp-2", "a string longer than sixteen bytes"};
    for (int i = 0; i < 9; ++i) {
      int64_t t = 1'000 + i * 1'500;
      Value v = i % 3 == 2 ? S(names[i % 3]) : i == 4 ? B(true) : N(i * 2.5 - 3);
      std::vector<Value> args(kGoldenSlots.size(), v);
      args[0] = M();
      w->Expire(t);
      w->Add(t, args);
    }
    std::string bytes;
    w->Serialize(&bytes);
    CHECK(bytes == GoldenFormat2(sliding));
    CHECK(bytes.size() * 3 < GoldenFormat1(sliding).size() * 2);  // a third smaller at least
    for (bool format1 : {true, false}) {
      INFO("format " << (format1 ? 1 : 2));
      auto loaded = Window::Make(spec, &kGoldenSlots);
      REQUIRE(loaded->Deserialize(format1 ? GoldenFormat1(sliding) : GoldenFormat2(sliding)));
      std::string again;
      loaded->Serialize(&again);
      CHECK(again == GoldenFormat2(sliding));  // format 1 is read, never written
      CHECK(Results(*loaded, kGoldenSlots.size()) == Results(*w, kGoldenSlots.size()));
    }
  }
}

TEST_CASE("window: format 2 numbers round-trip bit for bit; small integers take one byte", "[window]") {
  // Integers up to 2^53 in magnitude are varints; everything else (fractions, -0, infinities,
  // NaN, 2^53 + 2, 1e300) is a marker and the 8 bytes of the double.
  const double kTwo53 = 9007199254740992.0;
  const std::vector<double> values = {0.0, -0.0, 1.0, -1.0, 0.1, -2.5, 63.0, 64.0, 1e15,
                                      kTwo53, -kTwo53, kTwo53 + 2, -(kTwo53 + 2), 1e300,
                                      std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity(),
                                      std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::denorm_min()};
  const std::vector<AggFunc> slots = {AggFunc::kSum, AggFunc::kMin, AggFunc::kMax, AggFunc::kLast};
  for (double v : values) {
    INFO("value " << v << (std::signbit(v) ? " (negative)" : ""));
    auto w = Window::Make(CountSpec(3), &slots);
    for (int i = 0; i < 3; ++i) {
      std::vector<Value> args(slots.size(), N(v));
      w->Add(i, args);
    }
    std::string bytes, again;
    w->Serialize(&bytes);
    auto loaded = Window::Make(CountSpec(3), &slots);
    REQUIRE(loaded->Deserialize(bytes));
    loaded->Serialize(&again);
    CHECK(again == bytes);
    CHECK(Results(*loaded, slots.size()) == Results(*w, slots.size()));
    std::vector<Value> a(slots.size()), b(slots.size());
    w->Results(a);
    loaded->Results(b);
    for (size_t i = 0; i < slots.size(); ++i) {
      REQUIRE(a[i].is_number());
      REQUIRE(b[i].is_number());
      uint64_t x, y;
      std::memcpy(&x, &a[i].num, 8);
      std::memcpy(&y, &b[i].num, 8);
      CHECK(x == y);  // -0 stays -0, NaN stays NaN
    }
  }
  // A count-only window of 30 events: one byte a partial, about 2 a timestamp delta.
  const std::vector<AggFunc> count = {AggFunc::kCount};
  auto w = Window::Make(Sliding(600'000), &count);
  for (int i = 0; i < 30; ++i) {
    std::vector<Value> args = {M()};
    w->Add(1'795'726'800'000 + i * 1'000, args);
  }
  std::string bytes;
  w->Serialize(&bytes);
  CHECK(bytes.size() < 110);  // format 1: 30 × (2 + 8) + 8 + 21 = 329
}

TEST_CASE("window: windows share their rule's layout; Rebind moves them to an identical one", "[window]") {
  WindowSpec spec = Sliding(5'000);
  auto first = std::make_unique<WindowLayout>(spec, kAll);
  auto shared = Window::Make(first.get());
  auto owning = Window::Make(spec, &kAll);
  REQUIRE(shared);
  CHECK(Window::Make(nullptr) == nullptr);
  WindowLayout none;
  CHECK(Window::Make(&none) == nullptr);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 400; ++i) {
    int64_t t = i * 100;
    if (i == 200) {
      // A reload kept the rule: the new RuleSet's layout replaces the old one, which is freed.
      auto second = std::make_unique<WindowLayout>(spec, kAll);
      shared->Rebind(second.get());
      first = std::move(second);
    }
    std::string text = std::to_string(rng() % 9);
    Value v = rng() % 4 == 0 ? S(text) : N(static_cast<double>(rng() % 50));
    shared->Expire(t);
    owning->Expire(t);
    AddAll(*shared, t, v);
    AddAll(*owning, t, v);
    REQUIRE(Results(*shared, kAll.size()) == Results(*owning, kAll.size()));
  }
  std::string a, b;
  shared->Serialize(&a);
  owning->Serialize(&b);
  CHECK(a == b);
}

TEST_CASE("window: numeric-only windows stay small; wide rules still combine correctly", "[window]") {
  // Count/avg windows carry no first/last or count_distinct state: the window object plus one
  // block (back aggregate + ring) is all they hold.
  std::vector<AggFunc> small = {AggFunc::kCount, AggFunc::kAvg};
  auto w = Window::Make(Sliding(60'000), &small);
  CHECK(w->MemoryBytes() <= 128);
  // More than 32 doubles of partials: Results combines in a local buffer instead of the stack.
  std::vector<AggFunc> wide(12, AggFunc::kStddev);
  std::vector<AggFunc> one = {AggFunc::kStddev};
  auto ww = Window::Make(Sliding(1'000), &wide);
  auto w1 = Window::Make(Sliding(1'000), &one);
  for (int i = 0; i < 100; ++i) {
    int64_t t = i * 37;
    std::vector<Value> args(wide.size(), N(i % 7));
    ww->Expire(t);
    w1->Expire(t);
    ww->Add(t, args);
    w1->Add(t, std::span<const Value>(args.data(), 1));
    std::string r1 = Results(*w1, 1);
    std::vector<Value> out(wide.size());
    ww->Results(out);
    for (const Value& v : out) REQUIRE(Render(v) == r1);
  }
}

}  // namespace
}  // namespace vigie::rules
