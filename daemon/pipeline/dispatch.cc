#include "daemon/pipeline/dispatch.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>

#include "daemon/pipeline/shard.h"

namespace vigie::daemon {
namespace {

constexpr size_t kBulk = 64;

int SeverityIndex(const std::string& s) {
  if (s == "info") return 0;
  if (s == "warning") return 1;
  if (s == "critical") return 2;
  return 3;
}

int StateIndex(const std::string& s) {
  if (s == "firing") return 0;
  if (s == "resolved") return 1;
  return 2;
}

void Add(std::atomic<uint64_t>& c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

DispatchStats::DispatchStats() : latency(EventLatencyBounds()) {}

const char* DispatchStats::SeverityName(int i) {
  static const char* const kNames[] = {"info", "warning", "critical", "other"};
  return kNames[i];
}

const char* DispatchStats::StateName(int i) {
  static const char* const kNames[] = {"firing", "resolved", "other"};
  return kNames[i];
}

OutputDispatcher::OutputDispatcher(const DispatchOptions& opts, int shard_count,
                                   plugins::Sink* commands, plugins::Sink* alerts, SeqFn next_seq,
                                   const WallClock* clock)
    : opts_(opts),
      commands_(commands),
      alerts_(alerts),
      next_seq_(std::move(next_seq)),
      clock_(clock),
      buf_(kBulk) {
  for (int i = 0; i < shard_count; ++i) {
    queues_.push_back(std::make_unique<OutputQueue>(opts_.queue_capacity));
  }
}

OutputDispatcher::~OutputDispatcher() { Stop(); }

int64_t OutputDispatcher::depth() const {
  int64_t d = 0;
  for (const auto& q : queues_) d += q->depth();
  return d;
}

void OutputDispatcher::Start() {
  if (running_) return;
  running_ = true;
  stop_.store(false, std::memory_order_release);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "vg-dispatch");  // for top -H, perf and gdb
    // SCHED_BATCH: same share of the CPU as any thread, but a wake-up does not preempt the
    // running thread. A shard wakes the dispatcher for its outputs (at most once per 100 µs);
    // as an ordinary thread the dispatcher then preempted that shard on its core, sent a few
    // outputs and slept again (in stretches every ~45 µs; the shards switched 1 300-1 700 times
    // a second each). Now it runs when the core is next free or at the next tick, and sends
    // more per wake-up: 1.31 -> 0.71 µs of its CPU per event with the 200-rule set at 140 000
    // events/s (bench/PROFILE.md). Allowed without privileges; best effort (an error leaves it
    // an ordinary thread).
    sched_param sp{};
    sp.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    Run();
  });
}

void OutputDispatcher::Stop() {
  if (!running_) return;
  stop_.store(true, std::memory_order_release);
  waker_.Notify();
  thread_.join();
  running_ = false;
}

void OutputDispatcher::Dispatch(rules::Output& o) {
  if (next_seq_) {
    o.seq = next_seq_();
    Backoff backoff;
    int failures_while_stopping = 0;
    while (o.seq == 0) {
      Add(stats_.seq_failures);
      if (stop_.load(std::memory_order_acquire) && ++failures_while_stopping > 200) {
        Add(stats_.dropped);
        return;
      }
      backoff.Pause();
      o.seq = next_seq_();
    }
  } else {
    o.seq = ++local_seq_;
  }
  if (observer_) observer_(o);
  if (o.type == rules::OutputType::kCommand) {
    if (commands_) {
      commands_->Send(o);
    } else {
      Add(stats_.unsent);
    }
    Add(stats_.commands);
  } else {
    if (alerts_) {
      alerts_->Send(o);
    } else {
      Add(stats_.unsent);
    }
    Add(stats_.alerts[SeverityIndex(o.severity)][StateIndex(o.state)]);
  }
  if (o.ingest_ns != 0) {
    stats_.latency.Observe(static_cast<double>(clock_->SteadyNs() - o.ingest_ns) * 1e-9);
  }
}

size_t OutputDispatcher::DrainOnce(std::vector<moodycamel::ConsumerToken>& toks,
                                   std::vector<moodycamel::ProducerToken>& back) {
  size_t total = 0;
  for (size_t s = 0; s < queues_.size(); ++s) {
    OutputQueue& q = *queues_[s];
    const size_t n = q.PopBulk(toks[s], buf_.data(), buf_.size());
    for (size_t i = 0; i < n; ++i) {
      Dispatch(buf_[i]);
      q.Recycle(back[s], std::move(buf_[i]));  // its buffers go back to the shard
    }
    total += n;
  }
  return total;
}

void OutputDispatcher::Run() {
  std::vector<moodycamel::ConsumerToken> toks;
  std::vector<moodycamel::ProducerToken> back;
  toks.reserve(queues_.size());
  back.reserve(queues_.size());
  for (auto& q : queues_) {
    toks.emplace_back(q->queue());
    back.emplace_back(q->spent_queue());
  }
  for (;;) {
    if (DrainOnce(toks, back) > 0) continue;
    if (stop_.load(std::memory_order_acquire)) {
      // The shards are stopped: whatever is left is complete. Drain until empty.
      while (DrainOnce(toks, back) > 0 || depth() > 0) {
      }
      break;
    }
    waker_.Sleep(std::max<int64_t>(1, opts_.max_idle_ms) * 1000, [this] {
      return depth() > 0 || stop_.load(std::memory_order_acquire);
    });
  }
}

}  // namespace vigie::daemon
