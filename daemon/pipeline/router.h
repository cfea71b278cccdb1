#pragma once
// Router: the front of the event path. Sources hand it decoded batches (plugins::EventConsumer);
// it asks the current Routing which shards need each event (RouteMask over the RuleSet), drops
// events no rule can match (counted), groups the rest into one EventBatch per shard (an event
// needed by several shards — rules grouping by different fields — is copied to each) and
// enqueues the batch pointers on the shards' bounded queues.
//
// Threading: Consume() is called concurrently by every source thread; it takes no lock. Each
// source should get its own face from NewProducer() (moodycamel explicit producer tokens, one
// sub-queue per source and shard); calling Router::Consume directly also works (moodycamel
// implicit producers, one per thread). SetRouting() and Close() come from the control thread.
//
// Current rules: an std::atomic<std::shared_ptr<const Routing>>, loaded once per message (not per
// event) and held for the message. libstdc++ implements it with a lock bit held for the few
// instructions of a reference-count copy — never while waiting, never per event; a reload
// replaces it with one store and the old RuleSet dies when the last message using it is routed.
//
// Backpressure: when a shard queue is full, Consume() waits (spin, yield, then sleeps of 20 us
// growing to 1 ms, re-checking the close flag) until the shard makes room, so the source stops
// reading and its socket pushes back on senders. Waits and blocked time are counted.
//
// Allocation: events are moved into recycled batches by swapping with spent events, so the
// source's EventBuffer gets back spent events whose buffers it decodes the next messages into;
// an event several shards need is copied into a spent slot, reusing its buffers. Batches come
// from the BatchPool. Once the pool, the batches and the events' buffers have grown to their
// working size, routing allocates nothing (tests/plugins/alloc checks decode + route).
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/queues.h"
#include "daemon/pipeline/shard_engine.h"
#include "plugins/api/source.h"

namespace vigie::daemon {

inline constexpr int kMaxShards = 64;  // RouteMask is a 64-bit mask

struct RouterOptions {
  // Events per batch before it is handed to the shard (a big message is split).
  size_t max_batch_events = 1024;
  // Explicit producers each shard queue is sized for (sources using NewProducer()).
  size_t max_producers = 16;
};

// Written by source threads (relaxed RMW, once per message), read by the scrape.
struct RouterStats {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> events{0};             // events offered to Consume()
  std::atomic<uint64_t> unmatched{0};          // no rule can match: processed without rule
  std::atomic<uint64_t> routed{0};             // event copies enqueued (one per shard)
  std::atomic<uint64_t> copied{0};             // extra copies for multi-shard events
  std::atomic<uint64_t> dropped_closed{0};     // offered after Close() began
  std::atomic<uint64_t> backpressure_waits{0}; // messages that had to wait for room
  std::atomic<uint64_t> blocked_ns{0};         // time spent waiting for room
};

class Router final : public plugins::EventConsumer {
 public:
  // `queues[i]` is shard i's queue; all pointers outlive the router.
  Router(const RouterOptions& opts, std::vector<ShardQueue*> queues, BatchPool* pool,
         const WallClock* clock);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Publishes the routing for the rules in force (null: every event is unmatched).
  void SetRouting(std::shared_ptr<const Routing> routing);

  // A consumer for one source, with its own producer tokens. Must not outlive the router; used
  // by one thread at a time.
  std::unique_ptr<plugins::EventConsumer> NewProducer();

  // After Close() returns, no Consume() is running and every later one returns false at once
  // (a Consume blocked on a full queue gives up). Events it had not enqueued are counted as
  // dropped_closed. Call after the sources are stopped, before the shards drain.
  void Close();

  const RouterStats& stats() const { return stats_; }
  int shard_count() const { return static_cast<int>(queues_.size()); }

 protected:
  // EventConsumer::Consume on the router itself (implicit producers). Returns false once
  // Close() has begun. Afterwards the slots of `events` hold spent events (swapped with spent
  // batch slots, or the unrouted events themselves; contents unspecified): the source Clear()s
  // the buffer and decodes into it again. The time it waited on full queues is also the
  // caller's blocked time.
  bool DoConsume(rules::EventBuffer& events, int64_t* blocked_ns) override;

 private:
  class Producer;
  // tokens: one per shard, or null (implicit producer). Adds the time spent waiting for room
  // to *caller_blocked_ns as well as to stats().blocked_ns.
  bool ConsumeImpl(rules::EventBuffer& events, moodycamel::ProducerToken* tokens,
                   int64_t* caller_blocked_ns);
  bool Flush(int shard, EventBatch* b, moodycamel::ProducerToken* tok, bool* waited,
             int64_t* blocked_ns);

  const RouterOptions opts_;
  std::vector<ShardQueue*> queues_;
  BatchPool* pool_;
  const WallClock* clock_;
  std::atomic<std::shared_ptr<const Routing>> routing_;
  std::atomic<bool> closed_{false};
  std::atomic<int64_t> active_{0};  // Consume calls in flight
  RouterStats stats_;
};

}  // namespace vigie::daemon
