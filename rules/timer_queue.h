#pragma once
// TimerQueue: the engine's timers, a priority queue of entries by `due` (ms) whose pops come out
// in exactly the order a binary min-heap would give them (the entries' own total order), at a
// cost that does not grow with the number of timers.
//
// Why not std::priority_queue: with a million groups the engine's heap holds a million entries
// (32 MiB) and every pop sifts a hole through its 20 levels, the lower ten of them cache misses
// that depend on each other: 8-9 % of the engine's time at 1 M devices against nothing at 10 000
// (bench/PROFILE.md). Here, as in the hashed and hierarchical timing wheels of Varghese and Lauck
// (and the kernel's and Kafka's timer wheels), an entry goes into a bucket of `width` ms by its
// due instant; only the bucket of the instants coming next is ordered, in a small heap that stays
// in cache:
//
// - `near_`: a binary min-heap of the entries with due < near_end_;
// - a wheel of `slots` buckets of width 2^shift ms, for due in [near_end_, near_end_ + span):
//   a push appends to the bucket's newest chunk, one or two cache lines touched;
// - `far_`: a binary min-heap of the rest (due ≥ near_end_ + span), which move into the wheel as
//   it turns. Only timers further out than the span (70 minutes by default) pay for it.
//
// When `near_` runs dry the next non-empty bucket (found in a bitmap) becomes the near heap: its
// entries are all earlier than every entry left in the wheel and in `far_`, so the heap's top is
// the queue's smallest entry. Entries with equal `due` always share a bucket, so the entries'
// own order (rule, then arming order, for the engine) breaks ties exactly as before.
//
// Memory: the buckets' entries live in chunks of 8 from one pool that keeps its size (no
// allocation once the number of timers stops growing), so the queue holds about as much as the
// heap's array did at its largest, plus the partly filled chunk of each bucket in use, plus
// 12 bytes per slot (768 KiB for the default wheel). Not thread-safe.
//
// E needs `int64_t due` and a strict total order `operator>` that orders by `due` first.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace vigie::rules {

template <class E>
class TimerQueue {
 public:
  // Buckets of 2^shift ms (shift in [0, 30]), `slots` of them (rounded up to a power of two, at
  // least 64).
  static constexpr int kDefaultShift = 6;             // 64 ms
  static constexpr size_t kDefaultSlots = 1u << 16;   // × 65 536: a span of 70 minutes

  explicit TimerQueue(int shift = kDefaultShift, size_t slots = kDefaultSlots)
      : shift_(std::clamp(shift, 0, 30)),
        mask_(std::bit_ceil(std::max<size_t>(slots, 64)) - 1),
        head_(mask_ + 1, kNone),
        occupied_((mask_ + 1) / 64, 0) {}

  bool empty() const { return size() == 0; }
  size_t size() const { return near_.size() + wheel_count_ + far_.size(); }

  void Push(const E& e) {
    if (!started_) {  // the first timer sets where the wheel starts
      near_end_ = BucketEnd(e.due);
      started_ = true;
    }
    if (e.due < near_end_) {
      near_.push_back(e);
      std::push_heap(near_.begin(), near_.end(), Later());
    } else if (InWheel(e.due)) {
      AddToSlot(Slot(e.due), e);
    } else {
      far_.push_back(e);
      std::push_heap(far_.begin(), far_.end(), Later());
    }
  }

  // The smallest entry. Requires !empty(). Not const: it may turn the wheel (which changes
  // nothing of what the queue holds or the order it gives it back in).
  const E& Top() {
    while (near_.empty()) Refill();
    return near_.front();
  }

  // Removes Top(). Requires !empty().
  void Pop() {
    Top();
    std::pop_heap(near_.begin(), near_.end(), Later());
    near_.pop_back();
  }

  void Clear() {
    near_.clear();
    for (size_t w = 0; w < occupied_.size(); ++w) {
      for (uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1)
        head_[w * 64 + static_cast<size_t>(std::countr_zero(bits))] = kNone;
      occupied_[w] = 0;
    }
    pool_.clear();  // keeps its capacity
    free_ = kNone;
    wheel_count_ = 0;
    far_.clear();
  }

  // Calls f(const E&) for every entry, in no particular order.
  template <class F>
  void ForEach(F&& f) const {
    for (const E& e : near_) f(e);
    for (size_t w = 0; w < occupied_.size(); ++w)
      for (uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1)
        for (uint32_t c = head_[w * 64 + static_cast<size_t>(std::countr_zero(bits))]; c != kNone;
             c = pool_[c].next)
          for (uint32_t i = 0; i < pool_[c].n; ++i) f(pool_[c].items[i]);
    for (const E& e : far_) f(e);
  }

 private:
  using Later = std::greater<E>;  // std heap functions with it keep the smallest at the front
  static constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  static constexpr uint32_t kNone = UINT32_MAX;
  // A bucket is a list of chunks from one pool, newest first: a push touches the bucket's head
  // chunk only, and chunks drained go back to the pool. (A vector per bucket would allocate the
  // first time each bucket is used, for a whole turn of the wheel, and keep every bucket's
  // largest capacity.)
  static constexpr uint32_t kChunk = 8;
  struct Chunk {
    uint32_t next;  // the bucket's older chunk, or the next free one
    uint32_t n;     // entries used
    E items[kChunk];
  };

  int64_t Bucket(int64_t due) const { return due >> shift_; }  // floor(due / width)
  int64_t BucketEnd(int64_t due) const {
    const int64_t start = Bucket(due) << shift_;
    return start > kMax - (int64_t{1} << shift_) ? kMax : start + (int64_t{1} << shift_);
  }
  // due >= near_end_ is assumed: is it within the wheel's span?
  bool InWheel(int64_t due) const {
    // In unsigned arithmetic: the difference is non-negative, and may not fit an int64.
    return static_cast<uint64_t>(Bucket(due)) - static_cast<uint64_t>(Bucket(near_end_)) <= mask_;
  }
  size_t Slot(int64_t due) const { return static_cast<size_t>(Bucket(due)) & mask_; }

  // near_ is empty and the queue is not: the next non-empty bucket becomes the near heap.
  void Refill() {
    if (wheel_count_ == 0) {
      // Only far timers: turn the wheel to the first one's bucket, then take them in.
      near_end_ = Bucket(far_.front().due) << shift_;
      TakeFromFar();
    }
    // The first occupied slot at or after near_end_'s, in wheel order (there is one).
    const size_t from = Slot(near_end_);
    const size_t s = FirstOccupied(from);
    near_end_ = BucketEnd((Bucket(near_end_) + static_cast<int64_t>((s - from) & mask_)) << shift_);
    for (uint32_t c = head_[s]; c != kNone;) {
      const Chunk& k = pool_[c];
      near_.insert(near_.end(), k.items, k.items + k.n);
      const uint32_t next = k.next;
      pool_[c].next = free_;
      free_ = c;
      c = next;
    }
    head_[s] = kNone;
    occupied_[s >> 6] &= ~(uint64_t{1} << (s & 63));
    wheel_count_ -= near_.size();
    std::make_heap(near_.begin(), near_.end(), Later());
    TakeFromFar();
  }

  // The first slot at or after `from`, cyclically, whose bit is set (one is).
  size_t FirstOccupied(size_t from) const {
    const size_t words_mask = occupied_.size() - 1;
    size_t w = from >> 6;
    uint64_t bits = occupied_[w] & (~uint64_t{0} << (from & 63));
    // Back at `from`'s word after a full turn, its whole word is read: its bits at or after
    // `from` were clear, so what is found there comes before `from` in the wheel's order.
    while (bits == 0) {
      w = (w + 1) & words_mask;
      bits = occupied_[w];
    }
    return w * 64 + static_cast<size_t>(std::countr_zero(bits));
  }

  // Moves the far timers that the wheel's span now covers into the wheel.
  void TakeFromFar() {
    while (!far_.empty() && InWheel(far_.front().due)) {
      std::pop_heap(far_.begin(), far_.end(), Later());
      const E e = far_.back();
      far_.pop_back();
      AddToSlot(Slot(e.due), e);
    }
  }

  void AddToSlot(size_t s, const E& e) {
    uint32_t h = head_[s];
    if (h == kNone || pool_[h].n == kChunk) {
      uint32_t c;
      if (free_ != kNone) {
        c = free_;
        free_ = pool_[c].next;
      } else {
        c = static_cast<uint32_t>(pool_.size());
        pool_.emplace_back();
      }
      pool_[c].next = h;
      pool_[c].n = 0;
      head_[s] = h = c;
      occupied_[s >> 6] |= uint64_t{1} << (s & 63);
    }
    Chunk& k = pool_[h];
    k.items[k.n++] = e;
    ++wheel_count_;
  }

  int shift_;
  size_t mask_;
  bool started_ = false;
  int64_t near_end_ = 0;  // every entry of the wheel and of far_ is due at or after this
  std::vector<E> near_;
  std::vector<uint32_t> head_;      // slot -> its newest chunk in pool_, or kNone
  std::vector<uint64_t> occupied_;  // bit s: slot s holds entries
  std::vector<Chunk> pool_;
  uint32_t free_ = kNone;           // the free chunks of pool_, a list through Chunk::next
  size_t wheel_count_ = 0;
  std::vector<E> far_;
};

}  // namespace vigie::rules
