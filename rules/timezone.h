#pragma once
// TimeZone: how the engine turns its UTC instants into local wall-clock fields for hour(),
// minute() and weekday(). rules/ does no I/O, so the daemon provides the implementation backed by
// the system's tz database (daemon/tz.h); tests use FixedOffsetZone. Implementations must be
// safe to call from several shard threads at once.
#include <cstdint>

namespace vigie::rules {

struct LocalTime {
  int hour = 0;     // 0..23
  int minute = 0;   // 0..59
  int weekday = 1;  // 1 = Monday ... 7 = Sunday
};

class TimeZone {
 public:
  virtual ~TimeZone() = default;
  virtual LocalTime ToLocal(int64_t utc_ms) const = 0;
};

class FixedOffsetZone final : public TimeZone {
 public:
  explicit FixedOffsetZone(int offset_seconds) : offset_s_(offset_seconds) {}
  LocalTime ToLocal(int64_t utc_ms) const override;

 private:
  int offset_s_;
};

// Where the sun is measured from (sun_altitude()). Default: Dijon.
struct Location {
  double lat = 47.322;
  double lon = 5.041;
};

}  // namespace vigie::rules
