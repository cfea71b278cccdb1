#pragma once
// WallClock: the pipeline's only source of time. The daemon runs on wall time (SystemClock);
// tests use ManualClock and advance it by hand instead of sleeping.
//
// Threading: implementations must be safe to call from any thread (shard workers, router,
// dispatcher read it concurrently). ManualClock uses relaxed atomics.
#include <atomic>
#include <cstdint>

namespace vigie::daemon {

class WallClock {
 public:
  virtual ~WallClock() = default;
  // Milliseconds since the Unix epoch (engine time is derived from this).
  virtual int64_t NowMs() const = 0;
  // Monotonic nanoseconds (latency, blocked time); same base as Event::ingest_ns.
  virtual int64_t SteadyNs() const = 0;
};

// system_clock / steady_clock.
class SystemClock final : public WallClock {
 public:
  int64_t NowMs() const override;
  int64_t SteadyNs() const override;
};

// Time that moves only when told to. Advancing the wall clock also advances the steady clock by
// the same amount.
class ManualClock final : public WallClock {
 public:
  explicit ManualClock(int64_t now_ms = 0, int64_t steady_ns = 0)
      : now_ms_(now_ms), steady_ns_(steady_ns) {}
  int64_t NowMs() const override { return now_ms_.load(std::memory_order_acquire); }
  int64_t SteadyNs() const override { return steady_ns_.load(std::memory_order_acquire); }
  void SetMs(int64_t now_ms) {
    int64_t old = now_ms_.exchange(now_ms, std::memory_order_acq_rel);
    if (now_ms > old) steady_ns_.fetch_add((now_ms - old) * 1000000, std::memory_order_acq_rel);
  }
  void AdvanceMs(int64_t d) { SetMs(NowMs() + d); }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int64_t> steady_ns_;
};

}  // namespace vigie::daemon
