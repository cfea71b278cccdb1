#pragma once
// OutputDispatcher: the single thread between the shards and the sinks. Each shard pushes its
// outputs into its own OutputQueue (single producer, bounded: a full queue makes the shard wait,
// outputs are never dropped); the dispatcher drains every queue in bulk, stamps `seq` (one
// thread, so a plain counter / the SeqAllocator needs no atomics), calls the observer hook if
// set, and sends commands to the commands sink and alerts to the alerts sink.
//
// Order: outputs of one shard keep their order; outputs of different shards are interleaved in
// the order the dispatcher finds them. `seq` increases by one per output dispatched.
//
// Threading: Start/Stop/SetObserver come from the control thread (SetObserver before Start).
// The sinks, the seq source and the observer are called on the dispatcher thread only. Counters
// are relaxed atomics written by the dispatcher thread, read by the scrape.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/queues.h"
#include "plugins/api/sink.h"
#include "rules/output.h"

namespace vigie::daemon {

struct DispatchOptions {
  size_t queue_capacity = 1024;   // outputs per shard queue
  int64_t max_idle_ms = 10;       // longest idle sleep
};

struct DispatchStats {
  std::atomic<uint64_t> commands{0};
  // [severity][state]: severity info|warning|critical|other, state firing|resolved|other
  std::atomic<uint64_t> alerts[4][3]{};
  std::atomic<uint64_t> unsent{0};  // no sink configured for the output's type
  std::atomic<uint64_t> seq_failures{0};  // next_seq returned 0 (store write failed): retried
  std::atomic<uint64_t> dropped{0};  // still no seq after retrying during Stop(): not sent
  Histogram latency;  // ingest of the triggering event -> handed to the sink, seconds

  DispatchStats();
  static const char* SeverityName(int i);
  static const char* StateName(int i);
};

class OutputDispatcher {
 public:
  // Next seq (dispatcher thread only). 0 means "none available now" (SeqAllocator could not
  // persist its reservation): the output is held and the call retried with backoff, so outputs
  // wait rather than go out without a durable seq; during Stop() it gives up after 200 tries and
  // counts the output as dropped.
  using SeqFn = std::function<uint64_t()>;
  using Observer = std::function<void(const rules::Output&)>;

  // One OutputQueue per shard is created here. Sinks may be null (outputs of that type are only
  // counted as unsent). `next_seq` null: a counter starting at 1.
  OutputDispatcher(const DispatchOptions& opts, int shard_count, plugins::Sink* commands,
                   plugins::Sink* alerts, SeqFn next_seq, const WallClock* clock);
  ~OutputDispatcher();  // Stop()s
  OutputDispatcher(const OutputDispatcher&) = delete;
  OutputDispatcher& operator=(const OutputDispatcher&) = delete;

  // Called with every output after `seq` is stamped, before it is sent (dispatcher thread).
  void SetObserver(Observer fn) { observer_ = std::move(fn); }

  void Start();
  // Sends everything queued, then joins. The shards must be stopped first. Idempotent.
  void Stop();

  OutputQueue* queue(int shard) { return queues_[static_cast<size_t>(shard)].get(); }
  const OutputQueue& queue(int shard) const { return *queues_[static_cast<size_t>(shard)]; }
  Waker* waker() { return &waker_; }
  const DispatchStats& stats() const { return stats_; }
  int64_t depth() const;  // outputs queued, all shards

 private:
  void Run();
  size_t DrainOnce(std::vector<moodycamel::ConsumerToken>& toks,
                   std::vector<moodycamel::ProducerToken>& back);
  void Dispatch(rules::Output& o);

  const DispatchOptions opts_;
  std::vector<std::unique_ptr<OutputQueue>> queues_;
  plugins::Sink* commands_;
  plugins::Sink* alerts_;
  SeqFn next_seq_;
  uint64_t local_seq_ = 0;
  const WallClock* clock_;
  Observer observer_;
  Waker waker_;
  std::vector<rules::Output> buf_;
  DispatchStats stats_;
  std::thread thread_;
  bool running_ = false;
  std::atomic<bool> stop_{false};
};

}  // namespace vigie::daemon
