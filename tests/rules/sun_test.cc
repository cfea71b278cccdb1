#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

#include "rules/expr.h"

namespace vigie::rules {
namespace {

constexpr double kPi = 3.14159265358979323846;
double Rad(double d) { return d * kPi / 180; }
double Deg(double r) { return r * 180 / kPi; }

// Independent cross-check: the Astronomical Almanac's low-precision solar coordinates (ecliptic
// longitude -> right ascension/declination) with Greenwich mean sidereal time for the hour
// angle — a different route from NOAA's equation-of-time method, good to ~0.01 degree.
double AlmanacAltitude(int64_t utc_ms, double lat, double lon) {
  const double n = static_cast<double>(utc_ms) / 86400000.0 + 2440587.5 - 2451545.0;
  const double l = std::fmod(280.460 + 0.9856474 * n, 360.0);
  const double g = Rad(std::fmod(357.528 + 0.9856003 * n, 360.0));
  const double lambda = Rad(l + 1.915 * std::sin(g) + 0.020 * std::sin(2 * g));
  const double eps = Rad(23.439 - 0.0000004 * n);
  const double ra = std::atan2(std::cos(eps) * std::sin(lambda), std::cos(lambda));
  const double dec = std::asin(std::sin(eps) * std::sin(lambda));
  const double gmst_h = std::fmod(18.697374558 + 24.06570982441908 * n, 24.0);
  const double ha = Rad((gmst_h + lon / 15.0) * 15.0) - ra;
  return Deg(std::asin(std::sin(Rad(lat)) * std::sin(dec) +
                       std::cos(Rad(lat)) * std::cos(dec) * std::cos(ha)));
}

constexpr int64_t kDay = 86400000;
const Location kDijon{47.322, 5.041};

// Highest altitude over a UTC day, scanning minutes.
double MaxOfDay(int64_t midnight_ms, const Location& loc) {
  double best = -91;
  for (int m = 0; m < 1440; ++m) best = std::max(best, SunAltitude(midnight_ms + m * 60000LL, loc));
  return best;
}

TEST_CASE("SunAltitude matches reference values at Dijon", "[sun]") {
  // Reference altitudes computed offline with the Almanac method above (Python, double precision).
  struct Row {
    int64_t utc_ms;
    double deg;
  };
  const Row rows[] = {
      {1782042120000, 66.1130},   // 2026-06-21 11:42 UTC, solar noon at the solstice
      {1797853800000, 19.1909},   // 2026-12-21 11:50 UTC
      {1773993600000, 21.6793},   // 2026-03-20 08:00 UTC
      {1788283800000, 7.5828},    // 2026-09-01 17:30 UTC
      {1768518000000, -61.8250},  // 2026-01-15 23:00 UTC
  };
  for (const Row& r : rows) {
    INFO(r.utc_ms);
    CHECK(SunAltitude(r.utc_ms, kDijon) == Approx(r.deg).margin(0.05));
  }
}

TEST_CASE("SunAltitude at the solstices: noon heights and negative midnights", "[sun]") {
  const int64_t jun21 = 1782000000000;  // 2026-06-21 00:00 UTC
  const int64_t dec21 = 1797811200000;  // 2026-12-21 00:00 UTC
  REQUIRE(jun21 % kDay == 0);
  REQUIRE(dec21 % kDay == 0);
  CHECK(MaxOfDay(jun21, kDijon) == Approx(66.11).margin(0.1));
  CHECK(MaxOfDay(dec21, kDijon) == Approx(19.24).margin(0.1));
  CHECK(SunAltitude(jun21, kDijon) < -15);  // local midnight is ~22:00 UTC; 00:00 is still deep
  CHECK(SunAltitude(dec21, kDijon) < -60);

  // Second, cruder method: noon altitude = 90 - lat + declination, with Spencer's (1971) Fourier
  // series for the declination (~0.5 degree here: it is tuned to an older epoch) — no equation of time, no hour angle.
  for (int64_t midnight : {jun21, dec21, int64_t{1773964800000} /* 2026-03-20 */,
                           int64_t{1788220800000} /* 2026-09-01 */}) {
    const double day_index =
        static_cast<double>((midnight - 1767225600000 /* 2026-01-01 */) / kDay);  // 0-based
    const double g = 2 * kPi / 365.0 * day_index;
    const double decl = Deg(0.006918 - 0.399912 * std::cos(g) + 0.070257 * std::sin(g) -
                            0.006758 * std::cos(2 * g) + 0.000907 * std::sin(2 * g) -
                            0.002697 * std::cos(3 * g) + 0.00148 * std::sin(3 * g));
    INFO(midnight);
    CHECK(MaxOfDay(midnight, kDijon) == Approx(90 - kDijon.lat + decl).margin(0.6));
  }
}

TEST_CASE("SunAltitude agrees with an independent algorithm all year, everywhere", "[sun]") {
  const Location places[] = {kDijon, {0, 0}, {-33.87, 151.21}, {64.15, -21.94}, {40.71, -74.0}};
  double worst = 0;
  for (const Location& loc : places) {
    // Every 7 hours through 2026 (walks through all hours of the day).
    for (int64_t t = 1767225600000; t < 1767225600000 + 365 * kDay; t += 7 * 3600000LL) {
      worst = std::max(worst, std::fabs(SunAltitude(t, loc) - AlmanacAltitude(t, loc.lat, loc.lon)));
    }
  }
  CHECK(worst < 0.05);
}

TEST_CASE("SunAltitude handles instants before 1970", "[sun]") {
  const int64_t t = -86400000LL * 365 * 10 + 12 * 3600000LL;  // ~1960, around noon UTC
  CHECK(SunAltitude(t, kDijon) == Approx(AlmanacAltitude(t, kDijon.lat, kDijon.lon)).margin(0.1));
}

}  // namespace
}  // namespace vigie::rules
