#pragma once
// Checkpointer: writes the shards' state deltas to the StateStore on its own thread, so shard
// threads never wait on disk.
//
// Each shard, once per checkpoint_interval (and at shutdown), calls Submit() with what changed
// (rules::Engine::TakeDirty). Submit takes a mutex and moves the delta into that shard's pending
// slot: a mutex-protected queue is fine here because it is taken once per interval per shard,
// not per event. The writer thread writes one shard's pending delta as one batch (atomic).
//
// On a failed write the delta is kept and later deltas of the same shard are merged into it
// (a later put or delete of a key replaces an earlier one; a prefix delete drops earlier entries
// under it), so memory stays bounded by the state's size, not by the outage's length. Failures
// are counted, logged (rate-limited) and retried with exponential backoff (100 ms .. 5 s).
//
// Deltas of one shard are written in submission order. Shards' key spaces are assumed disjoint
// (a group lives on one shard); deltas of different shards are not merged with each other.
//
// Threading: Submit, Flush, Collect and the accessors are safe from any thread. Lifecycle:
// Start() once; Flush(deadline) at clean shutdown; Stop() (also done by the destructor) ends the
// thread and drops whatever is still pending.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/metrics/metrics.h"
#include "daemon/state/store.h"
#include "daemon/util/log.h"
#include "rules/engine.h"

namespace vigie::daemon {

struct CheckpointerOptions {
  int64_t retry_min_ms = 100;   // first backoff after a failure
  int64_t retry_max_ms = 5000;  // backoff doubles up to this
};

// What a shard still has to write. Public for tests.
//
// Deltas are kept as they came, oldest first, and written in one batch (StateStore::WriteAll):
// a shard submits a large regular checkpoint every interval and small ones after activations,
// and merging them into ordered maps (100 k string keys, on the shard thread, under the
// checkpointer's lock) cost more than writing a key twice. A shard's checkpoint round comes in
// slices (one delta per slice step, ~100 per second at full load), so the queue is long enough
// for seconds of them; only when more than kMaxQueued deltas wait (the store is failing or far
// behind) are they merged into maps, which bounds the memory to one entry per key.
struct MergedDelta {
  static constexpr size_t kMaxQueued = 4096;
  std::vector<rules::StateDelta> queued;  // oldest first (empty when merged)
  std::map<std::string, std::string> puts;
  std::set<std::string> deletes;
  std::set<std::string> delete_prefixes;
  bool merged = false;  // the maps hold the content
  bool empty() const { return queued.empty() && !merged; }
  // Adds a newer delta (consumes it). Applying the result has the effect of applying what was
  // here, then `newer`.
  void Merge(rules::StateDelta&& newer);
  // Moves the content out: deltas to apply in order (one when merged).
  std::vector<rules::StateDelta> Take();

 private:
  void MergeIntoMaps(rules::StateDelta&& newer);
};

class Checkpointer {
 public:
  // `store` and `log` (may be null) must outlive the checkpointer.
  Checkpointer(StateStore* store, Logger* log, CheckpointerOptions opts = {});
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  void Start();
  void Stop();

  // Hands a delta over without waiting for the write. An empty delta is ignored.
  void Submit(int shard, rules::StateDelta&& delta);
  // Waits until everything submitted before the call is written, or the deadline passes.
  // Returns true if all of it was written.
  bool Flush(std::chrono::steady_clock::time_point deadline);

  // vigie_checkpoint_duration_seconds (histogram), vigie_checkpoint_last_success_timestamp_seconds,
  // vigie_checkpoint_bytes_total, vigie_checkpoint_writes_total, vigie_checkpoint_failures_total,
  // vigie_checkpoint_pending_deltas.
  void Collect(MetricsWriter& w) const;

  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  size_t pending_deltas() const;

 private:
  struct Slot {
    MergedDelta pending;
    uint64_t pending_gen = 0;  // newest submission merged into `pending`
    size_t pending_count = 0;  // submissions merged into `pending`
    uint64_t submitted_gen = 0;
    uint64_t written_gen = 0;
  };
  void Run();
  Slot& SlotFor(int shard);  // mu_ held

  StateStore* store_;
  Logger* log_;
  CheckpointerOptions opts_;
  RateLimitedLog failure_log_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // writer waits: new work or stop
  std::condition_variable done_cv_;  // Flush waits: a write finished
  std::map<int, Slot> slots_;
  uint64_t next_gen_ = 0;
  size_t pending_deltas_ = 0;
  bool stop_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
  int64_t backoff_ms_ = 0;
  int last_shard_ = -1;
  std::thread thread_;

  Histogram duration_{std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1, 2.5, 5, 10}};
  std::atomic<double> last_success_unix_s_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace vigie::daemon
