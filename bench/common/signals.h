#pragma once
// StopSignals: SIGINT/SIGTERM as a condition to poll, without a signal handler or a global flag.
// Construct it first in main(), before any thread starts (ZeroMQ's I/O threads inherit the
// blocked mask, so the signals stay pending for the main thread). Pending() is a non-blocking
// sigtimedwait(). One instance per program; call from the main thread.
#include <csignal>
#include <ctime>

namespace vigie::bench {

class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigprocmask(SIG_BLOCK, &set_, nullptr);
  }
  // True once SIGINT or SIGTERM has arrived (latched).
  bool Pending() {
    if (stopped_) return true;
    timespec zero{0, 0};
    if (sigtimedwait(&set_, nullptr, &zero) > 0) stopped_ = true;
    return stopped_;
  }
  // Waits up to ms for a signal; true if one arrived.
  bool WaitFor(long ms) {
    if (stopped_) return true;
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    if (sigtimedwait(&set_, nullptr, &ts) > 0) stopped_ = true;
    return stopped_;
  }

 private:
  sigset_t set_;
  bool stopped_ = false;
};

}  // namespace vigie::bench
