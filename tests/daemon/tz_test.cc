#include <catch2/catch.hpp>

#include "daemon/util/tz.h"

using namespace vigie::daemon;

namespace {
constexpr int64_t kMin = 60000;
// 2026-03-29T01:00:00Z: Paris goes from CET (+1) to CEST (+2). 2026-10-25T01:00:00Z: back.
constexpr int64_t kSpring = 1774746000000;
constexpr int64_t kAutumn = 1792890000000;
}  // namespace

TEST_CASE("tz: Europe/Paris across both DST changes of 2026") {
  std::string err;
  auto tz = LoadTimeZone("Europe/Paris", &err);
  REQUIRE(tz != nullptr);

  auto before = tz->ToLocal(kSpring - kMin);  // 00:59Z = 01:59 CET
  CHECK(before.hour == 1);
  CHECK(before.minute == 59);
  CHECK(before.weekday == 7);  // Sunday
  auto after = tz->ToLocal(kSpring);  // 01:00Z = 03:00 CEST
  CHECK(after.hour == 3);
  CHECK(after.minute == 0);
  CHECK(after.weekday == 7);

  auto summer = tz->ToLocal(kAutumn - kMin);  // 00:59Z = 02:59 CEST
  CHECK(summer.hour == 2);
  CHECK(summer.minute == 59);
  auto winter = tz->ToLocal(kAutumn);  // 01:00Z = 02:00 CET
  CHECK(winter.hour == 2);
  CHECK(winter.minute == 0);
  CHECK(winter.weekday == 7);
  // Monday 2026-10-26 00:30 CET = 2026-10-25T23:30Z.
  auto monday = tz->ToLocal(kAutumn + 22 * 60 * kMin + 30 * kMin);
  CHECK(monday.hour == 0);
  CHECK(monday.minute == 30);
  CHECK(monday.weekday == 1);
  // Before the epoch, fractional second rounds down (1969-12-31T23:59:59.5Z = 00:59 CET, Thu).
  auto pre = tz->ToLocal(-500);
  CHECK(pre.hour == 0);
  CHECK(pre.minute == 59);
  CHECK(pre.weekday == 4);

  // Leave UTC behind for other tests of this binary.
  REQUIRE(LoadTimeZone("UTC", &err) != nullptr);
}

TEST_CASE("tz: unknown or unsafe names") {
  std::string err;
  CHECK(LoadTimeZone("Mars/Olympus", &err) == nullptr);
  CHECK(err == "unknown time zone 'Mars/Olympus'");
  CHECK(LoadTimeZone("../../etc/passwd", &err) == nullptr);
  CHECK(LoadTimeZone("/etc/passwd", &err) == nullptr);
  CHECK(LoadTimeZone("", &err) == nullptr);
  CHECK(LoadTimeZone("Europe", &err) == nullptr);  // a directory
  CHECK(err == "unknown time zone 'Europe'");
}
