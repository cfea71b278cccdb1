#pragma once
// Pacer: spaces batches so that a sender keeps a target rate of events per second. The sender
// calls Wait(n) before sending a batch of n events; rate 0 means "as fast as possible". If the
// sender falls more than a second behind (a slow receiver), the schedule restarts from now
// instead of bursting to catch up. Single-threaded.
#include <chrono>
#include <cstdint>
#include <thread>

namespace vigie::bench {

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Pacer(double events_per_s) : rate_(events_per_s), next_(Clock::now()) {}

  void Wait(size_t n) {
    if (rate_ <= 0) return;
    const auto now = Clock::now();
    if (now - next_ > std::chrono::seconds(1)) next_ = now;
    if (next_ > now) std::this_thread::sleep_until(next_);
    next_ += std::chrono::nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(n) / rate_));
  }

 private:
  double rate_;
  Clock::time_point next_;
};

inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}
inline int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}
inline double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace vigie::bench
