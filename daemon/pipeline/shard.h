#pragma once
// ShardWorker: one thread that owns one rules engine (through ShardEngine) and the groups whose
// keys hash to its shard. It drains its ShardQueue in bulk, feeds the engine wall-clock time and
// events, pushes outputs to its OutputQueue (for the dispatcher) and hands checkpoint deltas to
// the checkpointer.
//
// Clock (injected WallClock, so tests advance time by hand):
// - before each round of batches and on each idle tick: engine.AdvanceTo(wall_now - lateness_ms)
//   (timers fire at their own instants once the wall clock is `lateness_ms` past them);
// - each event is processed at T = clamp(ev.ts_ms, engine.now(), wall_now): never ahead of the
//   wall clock, never back in time. Events older than engine time are counted as late, events
//   from the future as future.
// - idle: sleeps until the next timer is due (in wall time) or at most max_idle_ms, woken early
//   by new batches, Stop() and RequestSwap(). No busy spin.
//
// Ownership and threading: the worker owns its engine. Before Start() and after Stop() the
// calling (control) thread may use Restore()/FinishRestore(); between them only the worker's
// thread touches the engine, except VisitRules() (the scrape), which is serialized with rule
// swaps by a mutex that the per-event path never takes. Counters are relaxed atomics written by
// the worker only. RequestSwap/WaitSwapped/Stop/Wake come from the control thread.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/queues.h"
#include "daemon/pipeline/shard_engine.h"
#include "rules/engine.h"

namespace vigie::daemon {

struct ShardOptions {
  int index = 0;
  // Timers fire once the wall clock is this far past their instant (slack for late events).
  int64_t lateness_ms = 0;
  // A checkpoint round (TakeDirtySlice -> checkpointer) every this often (wall time), counted from
  // the end of the previous round; 0 = only the final checkpoint.
  int64_t checkpoint_interval_ms = 1000;
  // A checkpoint round serializes the dirty groups in slices of this many groups, at most
  // checkpoint_budget_ns of them between two dequeues, so that events do not wait for a whole
  // round (100 000 groups: 100+ ms). Under load a round may outlast the interval; the next one
  // starts an interval after it completes.
  size_t checkpoint_slice_groups = 256;
  int64_t checkpoint_budget_ns = 1'000'000;
  // While a round is in progress its steps take at most this share of the shard's time
  // (RoundPacer); a round that has run for a whole checkpoint_interval goes on at full speed.
  // 1 = no pacing (every loop takes a step, as up to 5beb04d).
  double checkpoint_share = 1.0 / 3;
  // Longest idle sleep before re-reading the clock.
  int64_t max_idle_ms = 10;
  // Batches taken per dequeue.
  size_t max_dequeue = 16;
  // The dispatcher is woken at most once per this long for the outputs a shard queues (the
  // first output after a quiet spell at once), and whenever the shard finishes a round of
  // batches or goes idle.
  int64_t output_wake_ns = 100'000;
};

// Paces a checkpoint round. A round is CPU-heavy (every dirty group serialized, ~30 MB a round
// with the 200-rule bench set at 150 000 events/s) and, taken at full speed, it held both cores
// for about half a second a second: the slowest events of that half second were most of the
// latency's p99 (bench/PROFILE.md "Paced checkpoint rounds"). After a step that took d, the
// next is due d·(1/share − 1) later; the shard processes events meanwhile, or sleeps. Once the
// round has lasted `full_speed_after_ns` (the checkpoint interval), every step is due at once,
// so a round under full load is no longer than it was without pacing, plus that interval.
// Times are steady-clock ns. Not thread-safe (the shard's thread only).
class RoundPacer {
 public:
  RoundPacer(double share, int64_t full_speed_after_ns)
      : share_(share), full_speed_after_ns_(full_speed_after_ns) {}
  // A round begins now.
  void Begin(int64_t now_ns) {
    begin_ns_ = now_ns;
    next_ns_ = now_ns;
  }
  // A step ran from t0 to t1.
  void Stepped(int64_t t0_ns, int64_t t1_ns) {
    if (share_ >= 1 || share_ <= 0) return;
    const double pause = static_cast<double>(t1_ns - t0_ns) * (1.0 - share_) / share_;
    next_ns_ = t1_ns + static_cast<int64_t>(pause);
  }
  bool Due(int64_t now_ns) const { return WaitNs(now_ns) == 0; }
  // How long until the next step is due (0: now).
  int64_t WaitNs(int64_t now_ns) const {
    if (share_ >= 1 || share_ <= 0) return 0;
    const int64_t full_speed_at = begin_ns_ + full_speed_after_ns_;
    const int64_t due = next_ns_ < full_speed_at ? next_ns_ : full_speed_at;
    return due > now_ns ? due - now_ns : 0;
  }

 private:
  double share_;
  int64_t full_speed_after_ns_;
  int64_t begin_ns_ = 0;
  int64_t next_ns_ = 0;
};

// Hands a delta to the checkpointer; must not block (Checkpointer::Submit).
using CheckpointFn = std::function<void(int shard, rules::StateDelta&& delta)>;

// Latency buckets for vigie_event_latency_seconds: 10 us .. 10 s.
std::vector<double> EventLatencyBounds();

struct ShardStats {
  std::atomic<uint64_t> processed{0};    // events processed (copies: per shard)
  std::atomic<uint64_t> late{0};         // ts before engine time: processed at engine time
  std::atomic<uint64_t> future{0};       // ts after the wall clock: processed at wall time
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> outputs{0};
  std::atomic<uint64_t> checkpoints{0};  // checkpoint rounds completed (and activation deltas)
  std::atomic<uint64_t> swaps{0};        // rule swaps applied
  std::atomic<int64_t> groups{0};        // engine.group_count(), published after each round
  Histogram latency{EventLatencyBounds()};  // ingest -> processed, seconds

  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

class ShardWorker {
 public:
  // Pointers outlive the worker. `dispatcher` is woken when outputs are queued.
  ShardWorker(const ShardOptions& opts, std::unique_ptr<ShardEngine> engine, ShardQueue* in,
              OutputQueue* out, Waker* dispatcher, BatchPool* pool, const WallClock* clock,
              CheckpointFn checkpoint);
  ~ShardWorker();  // Stop()s if running
  ShardWorker(const ShardWorker&) = delete;
  ShardWorker& operator=(const ShardWorker&) = delete;

  // Before Start(), on the control thread. Restore returns false for entries that are not this
  // shard's (or belong to unknown/changed rules). FinishRestore re-arms timers at the clock's
  // now; timers that fell due fire (their outputs are queued: the dispatcher must be running).
  bool Restore(std::string_view key, std::string_view value);
  void FinishRestore();
  // After FinishRestore, before Start (control thread): see rules::Engine::TakeForeignKeys.
  void TakeForeignKeys(std::vector<std::string>* keys);
  void TakeAll(rules::StateDelta* delta);
  size_t group_count() const;

  void Start();
  // Drains the queue completely (the router must be closed first), takes a full checkpoint
  // (TakeAll) and joins. Idempotent.
  void Stop();
  // Wakes an idle worker (e.g. after a ManualClock moved).
  void Wake() { in_->waker().Notify(); }

  // Asks the worker to swap rules between two events. Returns a ticket for WaitSwapped. When the
  // worker is not running the swap happens at once on the calling thread.
  uint64_t RequestSwap(std::shared_ptr<const rules::RuleSet> rules);
  // True once the swap `ticket` (and every earlier one) has been applied, false at the deadline.
  bool WaitSwapped(uint64_t ticket, std::chrono::steady_clock::time_point deadline);

  // Calls fn(rule_name, stats) for each rule loaded in this shard's engine (scrape thread).
  void VisitRules(const std::function<void(const std::string&, const rules::RuleStats&)>& fn) const;

  int index() const { return opts_.index; }
  const ShardStats& stats() const { return stats_; }
  int64_t queue_depth() const { return in_->depth(); }
  int64_t output_depth() const { return out_->depth(); }

 private:
  // Hands the engine outputs the dispatcher has sent and given back (OutputQueue::TakeSpent), and
  // queues what it fills.
  class QueueSink final : public rules::OutputSink {
   public:
    QueueSink(ShardWorker* w)
        : w_(w), tok_(w->out_->queue()), spent_tok_(w->out_->spent_queue()) {}
    rules::Output& NewOutput() override;
    void Emit(rules::Output&& o) override;
    uint64_t since_checkpoint = 0;  // outputs (state changes) not yet covered by a checkpoint

    // Waking the dispatcher is a futex syscall and a context switch when it sleeps (nearly
    // always, at moderate rates: it sends an output in a few microseconds). One wake per output
    // was 9 % of the shards' time with the 200-rule set. The shard now wakes it at most once per
    // ShardOptions::output_wake_ns: an output queued after a quiet spell wakes it at once, the
    // ones that follow within that time are announced together (checked after each event), and
    // the shard always announces what it queued before it returns to its queue or sleeps.
    bool has_unwoken() const { return unwoken_ != 0; }
    // Wakes the dispatcher if outputs are unannounced and the last wake is old enough.
    void MaybeWakeDispatcher(int64_t now_ns) {
      if (unwoken_ != 0 && now_ns - last_wake_ns_ >= w_->opts_.output_wake_ns) Wake(now_ns);
    }
    void WakeDispatcher() {
      if (unwoken_ != 0) Wake(w_->clock_->SteadyNs());
    }

   private:
    ShardWorker* w_;
    moodycamel::ProducerToken tok_;
    moodycamel::ConsumerToken spent_tok_;
    rules::Output spare_;
    void Wake(int64_t now_ns) {
      unwoken_ = 0;
      last_wake_ns_ = now_ns;
      w_->dispatcher_->Notify();
    }
    uint32_t unwoken_ = 0;  // outputs queued since the dispatcher was last woken
    int64_t last_wake_ns_ = INT64_MIN / 2;  // steady clock
  };

  void Run();
  void ProcessBatch(const EventBatch& b, int64_t wall_ms);
  void ApplySwap();
  enum class CheckpointKind { kChanged, kFull };  // the regular ones: CheckpointSlices
  void Checkpoint(CheckpointKind kind);
  // One step of a checkpoint round: slices until the budget is spent; true when it completed.
  bool CheckpointSlices();

  const ShardOptions opts_;
  std::unique_ptr<ShardEngine> engine_;
  ShardQueue* in_;
  OutputQueue* out_;
  Waker* dispatcher_;
  BatchPool* pool_;
  const WallClock* clock_;
  CheckpointFn checkpoint_;
  QueueSink sink_;
  rules::StateDelta delta_;
  ShardStats stats_;

  std::thread thread_;
  bool running_ = false;  // control thread only
  std::atomic<bool> stop_{false};

  // Rule swaps (control path only; the worker checks swap_pending_ between batches).
  std::atomic<bool> swap_pending_{false};
  std::mutex swap_mu_;
  std::condition_variable swap_cv_;
  std::shared_ptr<const rules::RuleSet> pending_rules_;
  uint64_t swap_requested_ = 0;
  uint64_t swap_applied_ = 0;

  mutable std::mutex stats_mu_;  // engine->SwapRules vs VisitRules (scrape)
};

}  // namespace vigie::daemon
