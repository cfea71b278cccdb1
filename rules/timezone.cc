#include "rules/timezone.h"

namespace vigie::rules {

LocalTime FixedOffsetZone::ToLocal(int64_t utc_ms) const {
  int64_t secs = utc_ms / 1000;
  if (utc_ms % 1000 < 0) secs -= 1;
  secs += offset_s_;
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  LocalTime lt;
  lt.hour = static_cast<int>(rem / 3600);
  lt.minute = static_cast<int>(rem / 60 % 60);
  // 1970-01-01 was a Thursday (ISO weekday 4).
  int64_t wd = (days % 7 + 7 + 3) % 7;  // 0 = Monday
  lt.weekday = static_cast<int>(wd) + 1;
  return lt;
}

}  // namespace vigie::rules
