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
// The reservations are written ahead, on a thread of the allocator's own ("vg-seq"): once half
// of the reserved numbers are handed out, Next() asks for the next reservation (next + block)
// and goes on handing out the rest while it is written. A synced write waits for the WAL's
// fsync, behind whatever the checkpointer is writing: written by the dispatcher itself, as it
// was up to 5beb04d, it stopped every output for up to ~20 ms once per block (the output
// latency's p99.9 with the 200-rule bench set went from ~7 to ~23 ms; bench/PROFILE.md). Next()
// waits only if the numbers run out before the write is done. A reservation is at most `block`
// ahead of the last seq handed out when it was asked for, so a crash still skips at most one
// block.
//
// Threading: Next() has a single caller thread (the output dispatcher); Open/Close are called
// by the composition root around it. Not thread-safe otherwise. The reserver thread runs from
// Open to Close (or destruction, which is a crash as far as the store can tell).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "daemon/state/store.h"

namespace vigie::daemon {

class SeqAllocator {
 public:
  static constexpr uint64_t kDefaultBlock = 100000;

  explicit SeqAllocator(uint64_t block = kDefaultBlock) : block_(block == 0 ? 1 : block) {}
  ~SeqAllocator();
  SeqAllocator(const SeqAllocator&) = delete;
  SeqAllocator& operator=(const SeqAllocator&) = delete;

  // `store` must outlive the allocator (until Close). False with *error on a store failure.
  bool Open(StateStore* store, std::string* error);

  // The next seq (>= 1). Past half of the reservation, asks the reserver thread for the next
  // one (a Put with sync=true); when the reservation runs out, waits for that write. If it
  // failed, returns 0 (never a valid seq) and the value is not used: the caller must not send
  // the output with seq 0 (it may retry later, which asks again); last_error() says why.
  uint64_t Next();
  const std::string& last_error() const { return last_error_; }

  // The seq the next call to Next() would return.
  uint64_t peek() const { return next_; }

  // Stops the reserver, then records seq_next and the clean marker (synced). After Close,
  // Next() must not be called.
  bool Close(std::string* error);

 private:
  void StopReserver();
  void ReserverLoop();

  uint64_t block_;
  StateStore* store_ = nullptr;
  uint64_t next_ = 1;    // the caller's thread only
  uint64_t asked_ = 0;   // the caller's thread only: the last reservation asked for
  std::string last_error_;

  // Shared with the reserver thread.
  std::atomic<uint64_t> reserved_{1};  // values < reserved_ are covered by the stored reservation
  std::mutex mu_;
  std::condition_variable cv_;  // a request, a stop, or a write done (or failed)
  uint64_t requested_ = 0;      // under mu_: the reservation to write (0: none)
  bool failed_ = false;         // under mu_: the last write failed (error_ says why)
  std::string error_;           // under mu_
  bool stop_ = false;           // under mu_
  std::thread thread_;
};

}  // namespace vigie::daemon
