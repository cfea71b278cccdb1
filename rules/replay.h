#pragma once
// The replay driver: runs a RuleSet over a sequence of events on virtual time taken from the
// events themselves (`vigie replay`, `vigie test`). Deterministic; no I/O (the caller reads and
// decodes the lines and prints the outputs).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rules/engine.h"
#include "rules/output.h"
#include "rules/timezone.h"

namespace vigie::rules {

class ReplayDriver {
 public:
  // `sink` receives every output in time order with seq = 1, 2, 3 ...
  ReplayDriver(std::shared_ptr<const RuleSet> rules, const TimeZone* tz, Location location,
               OutputSink* sink);
  ~ReplayDriver();

  // Feeds one event. An event without ts (has_ts false) takes the previous event's time (the
  // epoch for the first one). Returns false, and processes nothing, if its ts is earlier than the
  // previous event's (*error says why).
  bool Feed(const Event& ev, std::string* error);
  // Advances time to `until` (default: the last event's time) so that due timers fire.
  void Finish(std::optional<int64_t> until);
  int64_t last_time() const { return last_ts_; }
  const Engine& engine() const { return *engine_; }

 private:
  class Stamper;
  std::unique_ptr<Stamper> stamper_;
  std::unique_ptr<Engine> engine_;
  int64_t last_ts_ = 0;
  bool seen_ = false;
};

}  // namespace vigie::rules
