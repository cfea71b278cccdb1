#pragma once
// SeqAllocator: the output `seq` (INTERFACES.md): +1 per output, never repeated across restarts,
// kill -9 included.
//
// Reservation scheme, in the store's "m/" key space:
//   m/seq_reserved  every seq below this may have been handed out (written, synced, before
//                   any value at or above the previous reservation is handed out)
//   m/seq_next      the next seq, written by Close()
//   m/seq_clean     "1" after Close(), "0" while running
// Open() starts at seq_next if the previous run closed cleanly, else at seq_reserved (a crash
// skips at most one block: a gap, never a repeat), then marks the store "not clean" (synced).
// The first seq of a fresh store is 1.
//
// Threading: Next() has a single caller thread (the output dispatcher); Open/Close are called
// by the composition root around it. Not thread-safe otherwise.
#include <cstdint>
#include <string>

#include "daemon/state/store.h"

namespace vigie::daemon {

class SeqAllocator {
 public:
  static constexpr uint64_t kDefaultBlock = 100000;

  explicit SeqAllocator(uint64_t block = kDefaultBlock) : block_(block == 0 ? 1 : block) {}

  // `store` must outlive the allocator (until Close). False with *error on a store failure.
  bool Open(StateStore* store, std::string* error);

  // The next seq (>= 1). When it reaches the reservation, first Puts a new reservation with
  // sync=true. If that write fails, returns 0 (never a valid seq) and the value is not used:
  // the caller must not send the output with seq 0 (it may retry later); last_error() says why.
  uint64_t Next();
  const std::string& last_error() const { return last_error_; }

  // The seq the next call to Next() would return.
  uint64_t peek() const { return next_; }

  // Records seq_next and the clean marker (synced). After Close, Next() must not be called.
  bool Close(std::string* error);

 private:
  uint64_t block_;
  StateStore* store_ = nullptr;
  uint64_t next_ = 1;
  uint64_t reserved_ = 1;  // values < reserved_ are covered by the stored reservation
  std::string last_error_;
};

}  // namespace vigie::daemon
