#include "daemon/state/memtable.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include <rocksdb/slice.h>

namespace vigie::daemon {
namespace {

using rocksdb::MemTableRep;
using rocksdb::Slice;

// ---- The sort -------------------------------------------------------------------------------

// 32 bytes of a user key from `depth` on, as four big-endian words (zero past the key's end),
// and the entry they came from. Comparing the words compares those bytes.
struct Rec {
  uint64_t w[4];
  const char* entry;
};
constexpr size_t kWindow = sizeof(Rec::w);
// Past this depth, runs that still tie are left to the comparator (keys that long are rare).
constexpr size_t kMaxDepth = 8 * kWindow;

Slice UserKey(const char* entry) {
  Slice ik = rocksdb::GetLengthPrefixedSlice(entry);
  return Slice(ik.data(), ik.size() >= 8 ? ik.size() - 8 : 0);
}

uint64_t LoadBigEndian(const char* p, size_t avail) {
  unsigned char b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(b, p, avail < 8 ? avail : 8);
  uint64_t v = 0;
  for (unsigned char c : b) v = (v << 8) | c;
  return v;
}

void Fill(Rec* r, size_t depth) {
  const Slice k = UserKey(r->entry);
  for (size_t i = 0; i < 4; ++i) {
    const size_t off = depth + 8 * i;
    r->w[i] = off < k.size() ? LoadBigEndian(k.data() + off, k.size() - off) : 0;
  }
}

bool WordsLess(const Rec& a, const Rec& b) {
  for (size_t i = 0; i < 4; ++i) {
    if (a.w[i] != b.w[i]) return a.w[i] < b.w[i];
  }
  return false;
}

bool WordsEqual(const Rec& a, const Rec& b) {
  return a.w[0] == b.w[0] && a.w[1] == b.w[1] && a.w[2] == b.w[2] && a.w[3] == b.w[3];
}

// Sorts [b, e), whose user keys agree on their first `depth` bytes. Zero padding sorts a key
// that ends before another's zero bytes no later than it, so words that differ decide as the
// bytewise order does; words that tie decide nothing and the run goes one window deeper, or to
// the comparator once no key in it goes on (or the depth is large).
void SortRange(Rec* b, Rec* e, size_t depth, const MemTableRep::KeyComparator& cmp) {
  for (Rec* r = b; r != e; ++r) Fill(r, depth);
  std::sort(b, e, WordsLess);
  for (Rec* run = b; run != e;) {
    Rec* end = run + 1;
    while (end != e && WordsEqual(*run, *end)) ++end;
    if (end - run > 1) {
      bool longer = false;
      for (Rec* r = run; r != end && !longer; ++r) longer = UserKey(r->entry).size() > depth + kWindow;
      if (longer && depth + kWindow < kMaxDepth) {
        SortRange(run, end, depth + kWindow, cmp);
      } else {
        std::sort(run, end, [&cmp](const Rec& x, const Rec& y) { return cmp(x.entry, y.entry) < 0; });
      }
    }
    run = end;
  }
}

// ---- The memtable ----------------------------------------------------------------------------

using Sorted = std::shared_ptr<const std::vector<const char*>>;

class SortedIterator final : public MemTableRep::Iterator {
 public:
  SortedIterator(Sorted v, const MemTableRep::KeyComparator& cmp)
      : v_(std::move(v)), cmp_(cmp), i_(v_->size()) {}

  bool Valid() const override { return i_ < v_->size(); }
  const char* key() const override { return (*v_)[i_]; }
  void Next() override { ++i_; }
  void Prev() override { i_ = i_ == 0 ? v_->size() : i_ - 1; }
  // First entry >= the target.
  void Seek(const Slice& internal_key, const char* memtable_key) override {
    auto it = std::partition_point(v_->begin(), v_->end(), [&](const char* e) {
      return Compare(e, internal_key, memtable_key) < 0;
    });
    i_ = static_cast<size_t>(it - v_->begin());
  }
  // Last entry <= the target.
  void SeekForPrev(const Slice& internal_key, const char* memtable_key) override {
    auto it = std::partition_point(v_->begin(), v_->end(), [&](const char* e) {
      return Compare(e, internal_key, memtable_key) <= 0;
    });
    i_ = it == v_->begin() ? v_->size() : static_cast<size_t>(it - v_->begin()) - 1;
  }
  void SeekToFirst() override { i_ = 0; }
  void SeekToLast() override { i_ = v_->empty() ? 0 : v_->size() - 1; }

 private:
  int Compare(const char* entry, const Slice& internal_key, const char* memtable_key) const {
    return memtable_key != nullptr ? cmp_(entry, memtable_key) : cmp_(entry, internal_key);
  }

  Sorted v_;
  const MemTableRep::KeyComparator& cmp_;
  size_t i_;  // v_->size(): not valid
};

class SortOnceRep final : public MemTableRep {
 public:
  SortOnceRep(const KeyComparator& cmp, rocksdb::Allocator* allocator)
      : MemTableRep(allocator), cmp_(cmp) {}

  void Insert(rocksdb::KeyHandle handle) override {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(static_cast<const char*>(handle));
  }

  bool Contains(const char* key) const override {
    Sorted v = Snapshot();
    auto it = std::lower_bound(v->begin(), v->end(), key,
                               [this](const char* a, const char* b) { return cmp_(a, b) < 0; });
    return it != v->end() && cmp_(*it, key) == 0;
  }

  void MarkReadOnly() override {
    std::lock_guard<std::mutex> lock(mu_);
    read_only_ = true;
  }

  size_t ApproximateMemoryUsage() override {
    std::lock_guard<std::mutex> lock(mu_);
    return sizeof(*this) + entries_.capacity() * sizeof(const char*) +
           (sorted_ ? sorted_->capacity() * sizeof(const char*) : 0);
  }

  // With an arena, RocksDB ends the iterator by calling its destructor and reclaims the arena
  // itself. The arena's allocator is not part of RocksDB's public headers, so the iterator is
  // built in storage this memtable keeps until it is destroyed (after every iterator on it):
  // one small block per iterator, a handful per memtable.
  Iterator* GetIterator(rocksdb::Arena* arena) override {
    Sorted v = Snapshot();
    if (arena == nullptr) return new SortedIterator(std::move(v), cmp_);
    std::lock_guard<std::mutex> lock(mu_);
    iterator_storage_.emplace_back(new unsigned char[sizeof(SortedIterator)]);
    return new (iterator_storage_.back().get()) SortedIterator(std::move(v), cmp_);
  }

  // RocksDB's MemTableRep::Get, which this memtable keeps (the LookupKey it takes is not in the
  // public headers), seeks an iterator from GetDynamicPrefixIterator() and never deletes it.
  // So that iterator belongs to the memtable: one per calling thread, replaced by the thread's
  // next Get (its previous Get has returned by then), destroyed with the memtable. Nothing else
  // asks for one without an arena when there is no prefix extractor (the factory sees to that).
  Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override {
    if (arena != nullptr) return GetIterator(arena);
    auto it = std::make_unique<SortedIterator>(Snapshot(), cmp_);
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = get_iterators_[std::this_thread::get_id()];
    slot = std::move(it);
    return slot.get();
  }

 private:
  // The entries in order. Read-only: sorted once (the entries move into the sorted list) and
  // shared by every reader. Still written: a sorted copy, kept until the next insert.
  Sorted Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (sorted_ && (final_ || sorted_->size() == entries_.size())) return sorted_;
    std::vector<const char*> v;
    if (read_only_) {
      v.swap(entries_);
      final_ = true;
    } else {
      v = entries_;
    }
    SortMemTableEntries(&v, cmp_);
    sorted_ = std::make_shared<const std::vector<const char*>>(std::move(v));
    return sorted_;
  }

  const KeyComparator& cmp_;
  mutable std::mutex mu_;
  mutable std::vector<const char*> entries_;  // in insertion order until sorted
  mutable Sorted sorted_;
  mutable bool final_ = false;  // sorted_ holds every entry (read-only, sorted)
  bool read_only_ = false;
  std::vector<std::unique_ptr<unsigned char[]>> iterator_storage_;
  std::map<std::thread::id, std::unique_ptr<SortedIterator>> get_iterators_;
};

class SortOnceFactory final : public rocksdb::MemTableRepFactory {
 public:
  using MemTableRepFactory::CreateMemTableRep;
  MemTableRep* CreateMemTableRep(const MemTableRep::KeyComparator& cmp,
                                 rocksdb::Allocator* allocator,
                                 const rocksdb::SliceTransform* prefix_extractor,
                                 rocksdb::Logger* logger) override {
    // With a prefix extractor RocksDB may ask for prefix iterators without an arena and delete
    // them itself (see GetDynamicPrefixIterator): use its own vector memtable then.
    if (prefix_extractor != nullptr) {
      return rocksdb::VectorRepFactory().CreateMemTableRep(cmp, allocator, prefix_extractor, logger);
    }
    return new SortOnceRep(cmp, allocator);
  }
  const char* Name() const override { return "VigieSortOnceMemTable"; }
};

}  // namespace

void SortMemTableEntries(std::vector<const char*>* entries,
                         const rocksdb::MemTableRep::KeyComparator& cmp) {
  if (entries->size() < 2) return;
  std::vector<Rec> recs(entries->size());
  for (size_t i = 0; i < entries->size(); ++i) recs[i].entry = (*entries)[i];
  SortRange(recs.data(), recs.data() + recs.size(), 0, cmp);
  for (size_t i = 0; i < recs.size(); ++i) (*entries)[i] = recs[i].entry;
}

std::shared_ptr<rocksdb::MemTableRepFactory> NewSortOnceMemTableFactory() {
  return std::make_shared<SortOnceFactory>();
}

}  // namespace vigie::daemon
