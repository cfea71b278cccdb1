#include "daemon/pipeline/queues.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VIGIE_CPU_RELAX() _mm_pause()
#else
#define VIGIE_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace vigie::daemon {

EventBatch* BatchPool::Get() {
  EventBatch* b = nullptr;
  if (free_.try_dequeue(b)) {
    b->size = 0;
    return b;
  }
  // Start-up (or a new high-water mark of batches in flight): make one.
  auto nb = std::make_unique<EventBatch>();
  b = nb.get();
  std::lock_guard<std::mutex> lk(grow_mu_);
  all_.push_back(std::move(nb));
  allocated_.fetch_add(1, std::memory_order_relaxed);
  return b;
}

void BatchPool::Put(EventBatch* b, moodycamel::ProducerToken* tok) {
  b->size = 0;
  // enqueue (not try_): the free list may need a block while the pool is still growing; once the
  // number of batches is stable its blocks are reused.
  if (tok) {
    free_.enqueue(*tok, b);
  } else {
    free_.enqueue(b);
  }
}

void Backoff::Pause() {
  if (n_ < 64) {
    VIGIE_CPU_RELAX();
  } else if (n_ < 80) {
    std::this_thread::yield();
  } else {
    // 20 us, 40 us, ... capped at 1 ms.
    int step = std::min(n_ - 80, 6);
    std::this_thread::sleep_for(std::chrono::microseconds(std::min(20 << step, 1000)));
  }
  ++n_;
}

ShardQueue::ShardQueue(size_t capacity_events, size_t capacity_batches, size_t max_producers)
    : cap_events_(std::max<size_t>(1, capacity_events)),
      cap_batches_(std::max<size_t>(1, capacity_batches)),
      // Enough blocks for every explicit producer to hold a full queue's worth of batch pointers,
      // plus implicit producers (sources that call Router::Consume directly).
      q_(std::max<size_t>(cap_batches_, 64), max_producers, 16) {}

bool ShardQueue::TryAdmit(size_t n) {
  int64_t b = batches_.fetch_add(1, std::memory_order_acq_rel);
  if (b >= static_cast<int64_t>(cap_batches_)) {
    batches_.fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  int64_t e = events_.load(std::memory_order_acquire);
  for (;;) {
    if (e != 0 && e + static_cast<int64_t>(n) > static_cast<int64_t>(cap_events_)) {
      batches_.fetch_sub(1, std::memory_order_acq_rel);
      return false;
    }
    if (events_.compare_exchange_weak(e, e + static_cast<int64_t>(n), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      return true;
    }
  }
}

void ShardQueue::Unadmit(size_t n) { Done(n); }

bool ShardQueue::Push(EventBatch* b, moodycamel::ProducerToken* tok) {
  bool ok = tok ? q_.try_enqueue(*tok, b) : q_.try_enqueue(b);
  if (ok) waker_.Notify();
  return ok;
}

OutputQueue::OutputQueue(size_t capacity)
    : cap_(static_cast<int64_t>(std::max<size_t>(1, capacity))),
      q_(std::max<size_t>(capacity, 64), 1, 0),
      // What can be out at once: a full queue, the dispatcher's bulk buffer and the shard's spare.
      spent_(std::max<size_t>(capacity, 64) + 128, 1, 0) {}

void OutputQueue::Push(moodycamel::ProducerToken& tok, rules::Output&& out, Waker& consumer) {
  Backoff backoff;
  bool waited = false;
  for (;;) {
    if (count_.load(std::memory_order_acquire) < cap_) {
      count_.fetch_add(1, std::memory_order_acq_rel);  // single producer: no race on the bound
      if (q_.try_enqueue(tok, std::move(out))) break;
      count_.fetch_sub(1, std::memory_order_acq_rel);
    }
    if (!waited) {
      waited = true;
      waits_.store(waits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    consumer.Notify();  // full: the consumer must run for room to appear
    backoff.Pause();
  }
  // Not woken for each output: the producer wakes the consumer once for several (ShardWorker).
}

}  // namespace vigie::daemon
