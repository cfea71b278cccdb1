#pragma once
// The lock-free plumbing of the event path: recycled event batches, the bounded per-shard input
// queues (router -> shard), the bounded per-shard output queues (shard -> dispatcher) and the
// wake-up primitive that lets an idle consumer sleep without a lock on the producer side.
//
// Ownership: the Pipeline owns one BatchPool, one ShardQueue and one OutputQueue per shard; the
// router, the shard workers and the dispatcher hold raw pointers that the Pipeline keeps alive
// longer than every thread that uses them.
//
// Threading:
// - BatchPool: Get() from any thread (source threads), Put() from any thread (shard threads).
// - ShardQueue: many producers (source threads, through the router), one consumer (its shard).
// - OutputQueue: one producer (its shard), one consumer (the dispatcher).
// Nothing here takes a lock except BatchPool::Get() when the pool must grow (start-up only: a
// batch, once made, is recycled for the life of the pipeline).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

#include "rules/event.h"
#include "rules/output.h"

namespace vigie::daemon {

// A group of events bound for one shard. `events[0, size)` are live; entries past `size` are
// spent events whose buffers are kept for reuse (no per-event allocation in steady state).
struct EventBatch {
  std::vector<rules::Event> events;
  size_t size = 0;

  // Moves `ev` in by swapping with a spent slot: the caller gets back a spent event whose
  // capacity it may reuse.
  void PushSwap(rules::Event& ev) {
    if (size < events.size()) {
      std::swap(events[size], ev);
    } else {
      events.push_back(std::move(ev));
      ev.Clear();
    }
    ++size;
  }
  // Copies `ev` in (reusing the slot's buffers): for an event several shards need.
  void PushCopy(const rules::Event& ev) {
    if (size < events.size()) {
      events[size] = ev;
    } else {
      events.push_back(ev);
    }
    events[size].is_copy = true;  // counted (processed, latency) only where the original goes
    ++size;
  }
};

// Free list of EventBatch objects. Owns every batch it ever made (freed with the pool).
class BatchPool {
 public:
  BatchPool() = default;
  BatchPool(const BatchPool&) = delete;
  BatchPool& operator=(const BatchPool&) = delete;

  // A batch with size 0; allocates only when the free list is empty.
  EventBatch* Get();
  void Put(EventBatch* b, moodycamel::ProducerToken* tok = nullptr);
  size_t allocated() const { return allocated_.load(std::memory_order_relaxed); }
  moodycamel::ConcurrentQueue<EventBatch*>& free_list() { return free_; }

 private:
  moodycamel::ConcurrentQueue<EventBatch*> free_{256};
  std::mutex grow_mu_;  // only when a new batch is made
  std::vector<std::unique_ptr<EventBatch>> all_;
  std::atomic<size_t> allocated_{0};
};

// Lets one consumer sleep until a producer has work for it, with a timeout. The producer side is
// a fence and a relaxed load in the common case (consumer busy); it signals a semaphore only when
// the consumer announced it is going to sleep. A wake-up lost to a race costs at most the sleep
// timeout (the consumer re-checks its queue on every wake), never an event.
class Waker {
 public:
  void Notify() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_relaxed) &&
        sleeping_.exchange(false, std::memory_order_acq_rel)) {
      sema_.signal();
    }
  }
  // Sleeps up to `timeout_us` unless `has_work()` is already true. Spurious wake-ups happen.
  template <class HasWork>
  void Sleep(int64_t timeout_us, HasWork has_work) {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!has_work() && timeout_us > 0) sema_.wait(timeout_us);
    sleeping_.store(false, std::memory_order_relaxed);
  }

 private:
  std::atomic<bool> sleeping_{false};
  moodycamel::LightweightSemaphore sema_{0, 0};  // no spinning: an idle consumer really sleeps
};

// Spin briefly, then yield, then sleep in small growing steps (up to 1 ms). For producers that
// must wait for room (the router on a full shard queue, a shard on a full output queue).
class Backoff {
 public:
  void Pause();
  void Reset() { n_ = 0; }

 private:
  int n_ = 0;
};

// Router -> shard. Bounded by two limits checked before every enqueue: queued events
// (`capacity_events`; a batch larger than that is admitted when the queue is empty, so a big
// message cannot wedge it) and queued batches (`capacity_batches`, which also sizes the
// moodycamel queue up front so try_enqueue never allocates). `depth()` counts events from
// admission until the shard has processed them.
class ShardQueue {
 public:
  ShardQueue(size_t capacity_events, size_t capacity_batches, size_t max_producers);
  ShardQueue(const ShardQueue&) = delete;
  ShardQueue& operator=(const ShardQueue&) = delete;

  // Reserves room for a batch of n events; false when full. On success the caller must Push.
  bool TryAdmit(size_t n);
  void Unadmit(size_t n);
  // Enqueues an admitted batch; false only if the moodycamel queue had no free block (then the
  // caller Unadmits and waits as if full). Wakes the shard.
  bool Push(EventBatch* b, moodycamel::ProducerToken* tok);
  // Consumer side.
  size_t PopBulk(moodycamel::ConsumerToken& tok, EventBatch** out, size_t max) {
    return q_.try_dequeue_bulk(tok, out, max);
  }
  void Done(size_t events) {  // after processing a popped batch of `events` events
    events_.fetch_sub(static_cast<int64_t>(events), std::memory_order_acq_rel);
    batches_.fetch_sub(1, std::memory_order_acq_rel);
  }
  bool Empty() const { return q_.size_approx() == 0; }
  int64_t depth() const { return events_.load(std::memory_order_relaxed); }
  size_t capacity_events() const { return cap_events_; }
  moodycamel::ConcurrentQueue<EventBatch*>& queue() { return q_; }
  Waker& waker() { return waker_; }

 private:
  const size_t cap_events_;
  const size_t cap_batches_;
  moodycamel::ConcurrentQueue<EventBatch*> q_;
  alignas(64) std::atomic<int64_t> events_{0};
  std::atomic<int64_t> batches_{0};
  Waker waker_;
};

// Shard -> dispatcher: single producer, single consumer, bounded in outputs. Push waits (never
// drops) while full.
//
// And back: the dispatcher returns every output it has sent (Recycle) and the shard refills it
// (TakeSpent), so that an output's strings and lists are allocated once, by the shard, and then
// circulate: no malloc on the shard and no free on the dispatcher per output (a free of another
// thread's block also contends for that thread's malloc arena). The return queue has room for
// every output that can be in flight; should it ever be full, the output is simply freed.
class OutputQueue {
 public:
  explicit OutputQueue(size_t capacity);
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Producer (the shard thread, with its own token). Waits while full; `waits` counts how often.
  // Wakes `consumer` only while full: the producer wakes it for the outputs it queued.
  void Push(moodycamel::ProducerToken& tok, rules::Output&& out, Waker& consumer);
  size_t PopBulk(moodycamel::ConsumerToken& tok, rules::Output* out, size_t max) {
    size_t n = q_.try_dequeue_bulk(tok, out, max);
    if (n) count_.fetch_sub(static_cast<int64_t>(n), std::memory_order_acq_rel);
    return n;
  }
  int64_t depth() const { return count_.load(std::memory_order_relaxed); }
  uint64_t waits() const { return waits_.load(std::memory_order_relaxed); }
  moodycamel::ConcurrentQueue<rules::Output>& queue() { return q_; }

  // Dispatcher: gives a sent output back (moved from; freed if the return queue is full).
  void Recycle(moodycamel::ProducerToken& tok, rules::Output&& out) {
    if (!spent_.try_enqueue(tok, std::move(out))) out = rules::Output();
  }
  // Shard: moves a sent output into *out (its buffers, to refill); false when none is back yet.
  bool TakeSpent(moodycamel::ConsumerToken& tok, rules::Output* out) {
    return spent_.try_dequeue(tok, *out);
  }
  moodycamel::ConcurrentQueue<rules::Output>& spent_queue() { return spent_; }

 private:
  const int64_t cap_;
  moodycamel::ConcurrentQueue<rules::Output> q_;
  moodycamel::ConcurrentQueue<rules::Output> spent_;
  alignas(64) std::atomic<int64_t> count_{0};
  std::atomic<uint64_t> waits_{0};  // written by the producer only
};

}  // namespace vigie::daemon
