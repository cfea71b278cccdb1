#include "daemon/pipeline/shard.h"

#include <pthread.h>

#include <algorithm>
#include <climits>

namespace vigie::daemon {

std::vector<double> EventLatencyBounds() {
  // Finer between 0.5 and 10 ms, where a busy daemon's percentiles lie (and the 1 ms / 5 ms
  // objectives of bench/): an estimate interpolated within 1..2.5 ms could be off by 0.7 ms.
  return {1e-5, 2.5e-5, 5e-5,   1e-4, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3,
          5e-3, 7.5e-3, 1e-2, 2.5e-2, 5e-2,   0.1,  0.25,   0.5,  1,    2.5,    5,    10};
}

rules::Output& ShardWorker::QueueSink::NewOutput() {
  // None back yet (start-up, or more outputs in flight than ever before): spare_ is the empty
  // husk of the last one emitted, and filling it allocates.
  w_->out_->TakeSpent(spent_tok_, &spare_);
  spare_.Clear();
  return spare_;
}

void ShardWorker::QueueSink::Emit(rules::Output&& o) {
  w_->out_->Push(tok_, std::move(o), *w_->dispatcher_);
  if (unwoken_++ == 0) MaybeWakeDispatcher(w_->clock_->SteadyNs());
  ShardStats::Add(w_->stats_.outputs);
  ++since_checkpoint;
}

ShardWorker::ShardWorker(const ShardOptions& opts, std::unique_ptr<ShardEngine> engine,
                         ShardQueue* in, OutputQueue* out, Waker* dispatcher, BatchPool* pool,
                         const WallClock* clock, CheckpointFn checkpoint)
    : opts_(opts),
      engine_(std::move(engine)),
      in_(in),
      out_(out),
      dispatcher_(dispatcher),
      pool_(pool),
      clock_(clock),
      checkpoint_(std::move(checkpoint)),
      sink_(this) {}

ShardWorker::~ShardWorker() { Stop(); }

bool ShardWorker::Restore(std::string_view key, std::string_view value) {
  return engine_->Restore(key, value);
}

void ShardWorker::TakeForeignKeys(std::vector<std::string>* keys) {
  engine_->TakeForeignKeys(keys);
}

void ShardWorker::TakeAll(rules::StateDelta* delta) { engine_->TakeAll(delta); }

size_t ShardWorker::group_count() const { return engine_->group_count(); }

void ShardWorker::FinishRestore() {
  engine_->FinishRestore(clock_->NowMs(), sink_);
  sink_.WakeDispatcher();
  stats_.groups.store(static_cast<int64_t>(engine_->group_count()), std::memory_order_relaxed);
}

void ShardWorker::Start() {
  if (running_) return;
  running_ = true;
  stop_.store(false, std::memory_order_release);
  thread_ = std::thread([this] {
    // Named for top -H, perf and gdb ("vg-shard-0"; at most 15 characters).
    const std::string name = "vg-shard-" + std::to_string(opts_.index);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    Run();
  });
}

void ShardWorker::Stop() {
  if (!running_) return;
  stop_.store(true, std::memory_order_release);
  Wake();
  thread_.join();
  running_ = false;
}

uint64_t ShardWorker::RequestSwap(std::shared_ptr<const rules::RuleSet> rules) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lk(swap_mu_);
    pending_rules_ = std::move(rules);
    ticket = ++swap_requested_;
    swap_pending_.store(true, std::memory_order_release);
  }
  if (running_) {
    Wake();
  } else {
    ApplySwap();  // the engine is ours while no thread runs
  }
  return ticket;
}

bool ShardWorker::WaitSwapped(uint64_t ticket, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lk(swap_mu_);
  return swap_cv_.wait_until(lk, deadline, [&] { return swap_applied_ >= ticket; });
}

void ShardWorker::ApplySwap() {
  std::shared_ptr<const rules::RuleSet> rules;
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lk(swap_mu_);
    if (!swap_pending_.load(std::memory_order_relaxed)) return;
    rules = std::move(pending_rules_);
    pending_rules_.reset();
    ticket = swap_requested_;
    swap_pending_.store(false, std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    engine_->SwapRules(std::move(rules));
  }
  ShardStats::Add(stats_.swaps);
  {
    std::lock_guard<std::mutex> lk(swap_mu_);
    swap_applied_ = ticket;
  }
  swap_cv_.notify_all();
}

void ShardWorker::VisitRules(
    const std::function<void(const std::string&, const rules::RuleStats&)>& fn) const {
  std::lock_guard<std::mutex> lk(stats_mu_);
  const size_t n = engine_->rule_count();
  for (size_t i = 0; i < n; ++i) fn(engine_->rule_name(i), engine_->stats(i));
}

bool ShardWorker::CheckpointSlices() {
  if (!checkpoint_) return true;
  const int64_t t0 = clock_->SteadyNs();
  bool done = false;
  // Slices taken back to back here see no engine change between them: one delta for all.
  do {
    done = engine_->TakeDirtySlice(&delta_, opts_.checkpoint_slice_groups);
  } while (!done && clock_->SteadyNs() - t0 < opts_.checkpoint_budget_ns);
  if (!delta_.empty()) {
    checkpoint_(opts_.index, std::move(delta_));
    delta_.clear();
  }
  if (done) ShardStats::Add(stats_.checkpoints);
  return done;
}

void ShardWorker::Checkpoint(CheckpointKind kind) {
  if (!checkpoint_) return;
  switch (kind) {
    case CheckpointKind::kFull: engine_->TakeAll(&delta_); break;
    case CheckpointKind::kChanged: engine_->TakeChanged(&delta_); break;
  }
  sink_.since_checkpoint = 0;
  if (delta_.empty()) return;
  checkpoint_(opts_.index, std::move(delta_));
  delta_.clear();  // moved-from: make it a valid empty delta again
  ShardStats::Add(stats_.checkpoints);
}

void ShardWorker::ProcessBatch(const EventBatch& b, int64_t wall_ms) {
  uint64_t late = 0, future = 0, originals = 0;
  // Events come from the source's core: ask for them ahead (two events for the event itself,
  // one for its kind and fields), hiding those misses behind the work of the events before.
  // The engine may read each event kLookahead events before it processes it (Prepare: when its
  // groups outgrow the caches), so the events are asked for that much further ahead.
  constexpr size_t kAhead = ShardEngine::kLookahead;
  for (size_t j = 0; j < b.size && j < kAhead + 2; ++j) rules::PrefetchEvent(b.events[j]);
  for (size_t j = 0; j < b.size && j < kAhead + 1; ++j) rules::PrefetchEventData(b.events[j]);
  for (size_t j = 0; j < b.size && j < kAhead; ++j) engine_->Prepare(b.events[j]);
  for (size_t i = 0; i < b.size; ++i) {
    if (i + kAhead + 2 < b.size) rules::PrefetchEvent(b.events[i + kAhead + 2]);
    if (i + kAhead + 1 < b.size) rules::PrefetchEventData(b.events[i + kAhead + 1]);
    if (i + kAhead < b.size) engine_->Prepare(b.events[i + kAhead]);
    const rules::Event& ev = b.events[i];
    const int64_t lo = engine_->now();
    int64_t t = ev.ts_ms;
    if (t > wall_ms) {
      t = wall_ms;
      ++future;
    }
    if (t < lo) {
      if (ev.ts_ms < lo) ++late;
      t = lo;
    }
    engine_->Process(ev, t, sink_);
    if (!ev.is_copy) ++originals;  // an event routed to several shards counts once
    const bool timed = !ev.is_copy && ev.ingest_ns != 0;
    if (!timed && !sink_.has_unwoken()) continue;
    // One steady-clock read (vDSO, ~25 ns) per event, for its latency and the dispatcher's wake.
    const int64_t now_ns = clock_->SteadyNs();
    sink_.MaybeWakeDispatcher(now_ns);
    // Latency to the end of this event, not of its batch: its outputs are already queued (the
    // dispatcher is woken at most output_wake_ns later), and a batch of a 256-event message
    // would otherwise charge the first event with the last's wait.
    if (timed) stats_.latency.Observe(static_cast<double>(now_ns - ev.ingest_ns) * 1e-9);
  }
  engine_->DropPrepared();  // none is left; the batch's storage is reused after this
  ShardStats::Add(stats_.processed, originals);
  ShardStats::Add(stats_.batches);
  if (late) ShardStats::Add(stats_.late, late);
  if (future) ShardStats::Add(stats_.future, future);
}

void ShardWorker::Run() {
  const size_t max_dequeue = std::clamp<size_t>(opts_.max_dequeue, 1, 256);
  std::vector<EventBatch*> buf(max_dequeue);
  moodycamel::ConsumerToken ctok(in_->queue());
  moodycamel::ProducerToken free_tok(pool_->free_list());
  int64_t next_checkpoint =
      opts_.checkpoint_interval_ms > 0 ? clock_->NowMs() + opts_.checkpoint_interval_ms : INT64_MAX;
  constexpr int64_t kTransitionCheckpointMs = 50;
  int64_t last_changed_checkpoint = clock_->NowMs();
  bool round = false;  // a checkpoint round is in progress (CheckpointSlices)
  RoundPacer pacer(opts_.checkpoint_share, opts_.checkpoint_interval_ms * 1'000'000);

  for (;;) {
    if (swap_pending_.load(std::memory_order_acquire)) ApplySwap();
    const size_t n = in_->PopBulk(ctok, buf.data(), max_dequeue);
    const int64_t wall = clock_->NowMs();
    if (n == 0 && stop_.load(std::memory_order_acquire) && in_->Empty()) break;
    engine_->AdvanceTo(wall - opts_.lateness_ms, sink_);
    for (size_t i = 0; i < n; ++i) {
      EventBatch* b = buf[i];
      ProcessBatch(*b, wall);
      in_->Done(b->size);
      pool_->Put(b, &free_tok);
      // Reload happens between two events: here, between two batches.
      if (swap_pending_.load(std::memory_order_acquire)) ApplySwap();
    }
    stats_.groups.store(static_cast<int64_t>(engine_->group_count()), std::memory_order_relaxed);
    if (!round && wall >= next_checkpoint) {
      round = true;
      pacer.Begin(clock_->SteadyNs());
    }
    bool round_done = false;
    if (round && pacer.Due(clock_->SteadyNs())) {
      const int64_t t0 = clock_->SteadyNs();
      round_done = CheckpointSlices();
      pacer.Stepped(t0, clock_->SteadyNs());
    }
    if (round_done) {
      // The round's last slices took the groups that changed before them: the next
      // activation-only checkpoint can wait its 50 ms.
      round = false;
      next_checkpoint = clock_->NowMs() + opts_.checkpoint_interval_ms;
      last_changed_checkpoint = wall;
    } else if (sink_.since_checkpoint > 0 &&
               wall >= last_changed_checkpoint + kTransitionCheckpointMs) {
      // A state change (an output went out) is checkpointed soon, not only at the interval, so
      // that a kill -9 right after an activation does not send its `then` again at restart.
      // Only the groups that changed are written; at most one such checkpoint per 50 ms. (Its
      // delta goes after the round's slices taken so far: the store sees them in order.)
      Checkpoint(CheckpointKind::kChanged);
      last_changed_checkpoint = wall;
    }
    sink_.WakeDispatcher();
    if (n > 0) continue;
    // In a round whose next step is not due yet (RoundPacer), sleep at most until it is.
    int64_t pace_us = 0;
    if (round) {
      const int64_t wait_ns = pacer.WaitNs(clock_->SteadyNs());
      if (wait_ns <= 0) continue;  // due: take it
      pace_us = std::max<int64_t>(1, wait_ns / 1000);
    }

    // Idle: sleep until the next timer is due in wall time, the next checkpoint, or max_idle_ms.
    int64_t wake_ms = wall + std::max<int64_t>(1, opts_.max_idle_ms);
    const int64_t next_timer = engine_->NextTimer();
    if (next_timer != INT64_MAX && next_timer < INT64_MAX - opts_.lateness_ms) {
      wake_ms = std::min(wake_ms, next_timer + opts_.lateness_ms);
    }
    if (!round) wake_ms = std::min(wake_ms, next_checkpoint);
    if (sink_.since_checkpoint > 0 && checkpoint_)
      wake_ms = std::min(wake_ms, last_changed_checkpoint + kTransitionCheckpointMs);
    int64_t sleep_us = std::max<int64_t>(1, wake_ms - wall) * 1000;
    if (pace_us > 0) sleep_us = std::min(sleep_us, pace_us);
    in_->waker().Sleep(sleep_us, [this] {
      return !in_->Empty() || stop_.load(std::memory_order_acquire) ||
             swap_pending_.load(std::memory_order_acquire);
    });
  }
  sink_.WakeDispatcher();
  // Drained: final full checkpoint.
  Checkpoint(CheckpointKind::kFull);
  stats_.groups.store(static_cast<int64_t>(engine_->group_count()), std::memory_order_relaxed);
}

}  // namespace vigie::daemon
