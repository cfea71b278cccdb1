#pragma once
// Pipeline: the event path of the daemon, source -> router -> shards -> dispatcher -> sinks.
// It owns the router, one ShardWorker (thread + engine) per shard, the queues between them and
// the output dispatcher (thread). The composition root (daemon/app.cc) builds it with its
// options and dependencies, hands NewConsumer() to each source, and drives the lifecycle:
//
//   Pipeline p(opts, deps, rules);
//   p.SetObserver(...);              // optional
//   p.Restore(store, &err);          // optional, before Start; starts the dispatcher (restored
//                                    // timers that fell due are sent): start the sinks first
//   p.Start();                       // dispatcher, then shards
//   ... sources run; p.Reload(new_rules) on SIGHUP / POST /-/reload ...
//   (stop the sources)  p.Stop();    // close the router, drain + checkpoint each shard, drain
//                                    // the dispatcher: reverse order of start
//
// Threading: consumers (router) are called by source threads; Collect()/RulesJson() by the
// scrape thread at any time; Start/Stop/Reload/Restore/SetObserver by one control thread at a
// time (serialized by an internal mutex that the event path never takes). See README.md.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/dispatch.h"
#include "daemon/pipeline/queues.h"
#include "daemon/pipeline/router.h"
#include "daemon/pipeline/shard.h"
#include "daemon/pipeline/shard_engine.h"
#include "daemon/state/store.h"
#include "plugins/api/sink.h"
#include "plugins/api/source.h"
#include "rules/engine.h"
#include "rules/timezone.h"

namespace vigie::daemon {

struct PipelineOptions {
  int shards = 1;                      // 1..64 (the app resolves `shards: 0` to the core count)
  size_t queue_capacity = 65536;       // events per shard queue (backpressure beyond)
  size_t queue_batches = 0;            // batches per shard queue; 0 = max(16, capacity / 64)
  size_t max_batch_events = 1024;      // a batch is handed to its shard at this size
  size_t max_producers = 16;           // sources using NewConsumer(), for queue sizing
  size_t output_queue_capacity = 1024; // outputs per shard -> dispatcher queue
  int64_t lateness_ms = 0;             // timers fire this long after their instant (wall)
  int64_t checkpoint_interval_ms = 1000;
  int64_t max_idle_ms = 10;            // longest idle sleep of shards and dispatcher
  int64_t reload_timeout_ms = 5000;    // Reload() waits this long for every shard
  // Engine options (tz required for the real engine; shard_index/count are set per shard).
  const rules::TimeZone* tz = nullptr;
  rules::Location location;
  int64_t idle_evict_ms = 0;
};

struct PipelineDeps {
  const WallClock* clock = nullptr;     // required; outlives the pipeline
  plugins::Sink* commands = nullptr;    // may be null; outlives the pipeline
  plugins::Sink* alerts = nullptr;      // may be null
  CheckpointFn checkpoint;              // Checkpointer::Submit; may be empty (no state kept)
  OutputDispatcher::SeqFn next_seq;     // SeqAllocator::Next; empty: 1, 2, 3 ...
  // For tests; empty = the real rules engine / rules::RouteMask.
  ShardEngineFactory engine_factory;
  std::function<std::shared_ptr<const Routing>(std::shared_ptr<const rules::RuleSet>)> routing;
};

class Pipeline {
 public:
  Pipeline(const PipelineOptions& opts, PipelineDeps deps,
           std::shared_ptr<const rules::RuleSet> rules);
  ~Pipeline();  // Stop()s
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // A consumer for one source (own producer tokens). Must not outlive the pipeline.
  std::unique_ptr<plugins::EventConsumer> NewConsumer() { return router_->NewProducer(); }
  // The shared consumer (any thread; moodycamel implicit producers).
  plugins::EventConsumer* consumer() { return router_.get(); }

  // Observes every output after its seq is stamped (dispatcher thread). Before Start/Restore.
  void SetObserver(OutputDispatcher::Observer fn);

  // Before Start: feeds every stored group entry (key under Engine::StatePrefix()) to the shard
  // that owns it, then re-arms timers at the clock's now (due ones fire and are sent). Entries
  // no shard accepts (unknown or changed rules) are skipped and counted. False with *error if
  // the store cannot be read or the pipeline is already started.
  bool Restore(StateStore& store, std::string* error);

  void Start();
  // The sources must be stopped first. Closes the router (a Consume still blocked gives up),
  // drains every shard (each event already enqueued is processed), takes each shard's final
  // checkpoint, then sends every queued output. Idempotent.
  void Stop();

  // Swaps the rules in every shard between two events (and the routing at once). Returns true
  // when every shard acknowledged before reload_timeout_ms; false otherwise (the swap is still
  // pending on the late shards and will happen).
  bool Reload(std::shared_ptr<const rules::RuleSet> rules);

  // Prometheus samples (scrape thread): see README.md for the list.
  void Collect(MetricsWriter& w) const;
  // GET /rules: [{"name", "file", "line", "kind", "description", "active_groups", "groups",
  // "evaluations", "activations", "errors"}, ...] in rule order; counters summed over shards.
  std::string RulesJson() const;

  std::shared_ptr<const rules::RuleSet> rules() const;
  int shard_count() const { return static_cast<int>(shards_.size()); }
  // For tests and diagnostics.
  const Router& router() const { return *router_; }
  const ShardWorker& shard(int i) const { return *shards_[static_cast<size_t>(i)]; }
  const OutputDispatcher& dispatcher() const { return *dispatcher_; }
  uint64_t restored_entries() const { return restored_; }  // store entries that a shard took
  uint64_t restored_groups() const { return restored_groups_; }
  // Packs of another shard count that Restore rewrote for this one (and deleted).
  uint64_t relaid_packs() const { return relaid_packs_; }
  uint64_t ignored_entries() const { return ignored_; }
  // Wakes idle shards (after a ManualClock moved).
  void Wake();

 private:
  const PipelineOptions opts_;
  PipelineDeps deps_;
  mutable std::mutex control_mu_;  // lifecycle and reload; never on the event path
  std::atomic<std::shared_ptr<const rules::RuleSet>> rules_;  // written under control_mu_
  bool started_ = false;
  bool stopped_ = false;
  uint64_t restored_ = 0, ignored_ = 0, restored_groups_ = 0, relaid_packs_ = 0;

  // Destruction order matters: threads (dispatcher, shards) stop before the queues go.
  BatchPool pool_;
  std::vector<std::unique_ptr<ShardQueue>> queues_;
  std::unique_ptr<OutputDispatcher> dispatcher_;
  std::vector<std::unique_ptr<ShardWorker>> shards_;
  std::unique_ptr<Router> router_;
};

}  // namespace vigie::daemon
