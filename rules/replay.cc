#include "rules/replay.h"

#include "rules/timefmt.h"

namespace vigie::rules {

class ReplayDriver::Stamper : public OutputSink {
 public:
  explicit Stamper(OutputSink* next) : next_(next) {}
  void Emit(Output&& o) override {
    o.seq = ++seq_;
    next_->Emit(std::move(o));
  }

 private:
  OutputSink* next_;
  uint64_t seq_ = 0;
};

ReplayDriver::ReplayDriver(std::shared_ptr<const RuleSet> rules, const TimeZone* tz,
                           Location location, OutputSink* sink)
    : stamper_(std::make_unique<Stamper>(sink)) {
  EngineOptions o;
  o.tz = tz;
  o.location = location;
  engine_ = std::make_unique<Engine>(std::move(rules), o);
}

ReplayDriver::~ReplayDriver() = default;

bool ReplayDriver::Feed(const Event& ev, std::string* error) {
  int64_t t = ev.has_ts ? ev.ts_ms : last_ts_;
  if (seen_ && t < last_ts_) {
    *error = "ts " + FormatRfc3339Ms(t) + " is earlier than the previous event's (" +
             FormatRfc3339Ms(last_ts_) + "); skipped";
    return false;
  }
  seen_ = true;
  last_ts_ = t;
  engine_->Process(ev, t, *stamper_);
  return true;
}

void ReplayDriver::Finish(std::optional<int64_t> until) {
  int64_t t = until.value_or(last_ts_);
  engine_->AdvanceTo(t, *stamper_);
}

}  // namespace vigie::rules
