#pragma once
// GroupTable: one rule's groups of one shard, by group key. An open-addressing hash table of
// (hash, pointer) slots with linear probing and backward-shift deletion (no tombstones).
//
// Why not std::unordered_map<std::string, std::unique_ptr<Group>>: that map was the largest item
// of the daemon's profile (≈ 22 % of CPU at full load with 146 k groups): every lookup walks a
// bucket array, a node chain and a second copy of the key, three dependent cache misses, and it
// hashes the key again for every rule. Here the caller hashes a key once per event and group_by
// list (the same FNV-1a that picks the shard), a probe compares 64-bit hashes in one contiguous
// array, and only a hash match touches the element to compare its key: one miss for the slot, one
// for the element, which the caller is about to read anyway. The element keeps its own key, so
// the key is stored once.
//
// The table does not own its elements (the engine frees them: groups outlive their slot while a
// timer still refers to them). T needs a `std::string key` member. Not thread-safe.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/prefetch.h"

namespace vigie::rules {

template <class T>
class GroupTable {
 public:
  GroupTable() = default;
  GroupTable(const GroupTable&) = delete;
  GroupTable& operator=(const GroupTable&) = delete;
  GroupTable(GroupTable&& o) noexcept { *this = std::move(o); }
  GroupTable& operator=(GroupTable&& o) noexcept {
    if (this != &o) {
      slots_ = std::move(o.slots_);
      size_ = o.size_;
      mask_ = o.mask_;
      o.slots_.clear();
      o.size_ = 0;
      o.mask_ = 0;
    }
    return *this;
  }

  // The element with this key (hash = its FNV-1a, as the caller computed it), or nullptr.
  [[gnu::always_inline]] T* Find(uint64_t hash, std::string_view key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = Home(hash);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.ptr == nullptr) return nullptr;
      if (s.hash == hash && s.ptr->key == key) return s.ptr;
    }
  }

  // Cache hints for a lookup of `hash` coming soon: the home slot; then (once that slot is in
  // cache) the element it holds when its hash matches — the likely result. Never fault.
  void PrefetchSlot(uint64_t hash) const {
    if (!slots_.empty()) Prefetch(&slots_[Home(hash)]);
  }
  // `lines`: how many 64-byte steps from the element's start (what the caller reads of it).
  // The element is looked for along the probe run, not only in the home slot: at the table's
  // load (3/8 to 3/4) a good part of the elements sit one or more slots past their home, and a
  // hint that skipped them left their miss to the lookup.
  void PrefetchElement(uint64_t hash, int lines = 2) const {
    if (slots_.empty()) return;
    size_t i = Home(hash);
    for (int probes = 0; probes < kPrefetchProbes; ++probes, i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.ptr == nullptr) return;
      if (s.hash == hash) {
        for (int l = 0; l < lines; ++l) Prefetch(reinterpret_cast<const char*>(s.ptr) + 64 * l);
        return;
      }
    }
  }

  // Adds an element whose key is not in the table yet.
  void Insert(uint64_t hash, T* p) {
    if ((size_ + 1) * 4 > slots_.size() * 3 || slots_.empty()) Grow();
    Place(hash, p);
    ++size_;
  }

  // Removes this element (found by pointer); false if it is not in the table.
  bool Erase(uint64_t hash, const T* p) {
    if (slots_.empty()) return false;
    size_t i = Home(hash);
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].ptr == nullptr) return false;
      if (slots_[i].ptr == p) break;
    }
    // Backward shift: pull later members of the probe run into the hole when the hole lies
    // between their home slot and where they are now.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      Slot& s = slots_[j];
      if (s.ptr == nullptr) break;
      const size_t home = Home(s.hash);
      const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        slots_[hole] = s;
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls f(T*) for every element, in slot order. f must not change the table.
  template <class F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_)
      if (s.ptr) f(s.ptr);
  }

  // Empties the table and hands the elements over.
  std::vector<T*> Release() {
    std::vector<T*> out;
    out.reserve(size_);
    ForEach([&](T* p) { out.push_back(p); });
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
    mask_ = 0;
    return out;
  }

  // Where a probe for `hash` starts in an array of mask + 1 slots (public for tests).
  static size_t HomeSlot(uint64_t hash, size_t mask) {
    // FNV-1a's low bits are weak for short keys differing in their last bytes: mix first.
    return static_cast<size_t>((hash * 0x9E3779B97F4A7C15ull) >> 32) & mask;
  }

  // Bytes of the slot array (memory accounting).
  size_t SlotBytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint64_t hash = 0;
    T* ptr = nullptr;
  };
  // How far PrefetchElement follows a probe run: the 4 slots of a cache line and the next
  // line's 4 (a longer run is rare below 3/4 load; the lookup still finds its element).
  static constexpr int kPrefetchProbes = 8;

  size_t Home(uint64_t hash) const { return HomeSlot(hash, mask_); }

  void Place(uint64_t hash, T* p) {
    size_t i = Home(hash);
    while (slots_[i].ptr != nullptr) i = (i + 1) & mask_;
    slots_[i] = Slot{hash, p};
  }

  void Grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    const size_t cap = old.empty() ? 16 : old.size() * 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const Slot& s : old)
      if (s.ptr) Place(s.hash, s.ptr);
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

}  // namespace vigie::rules
