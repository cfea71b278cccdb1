// SunAltitude: the NOAA solar position algorithm (the one of NOAA's "Solar Calculator"
// spreadsheets, after Meeus, "Astronomical Algorithms"): Julian century -> geometric mean
// longitude and anomaly -> equation of centre -> apparent longitude -> declination; equation of
// time -> true solar time -> hour angle -> zenith angle. Accurate to about 0.01 degree for
// 1800-2100.
//
// The result is the *geometric* altitude of the sun's centre, without atmospheric refraction:
// that is the quantity twilight thresholds are defined on (civil -6, nautical -12, astronomical
// -18); the visible sunrise/sunset is at about -0.833.
#include <cmath>
#include <cstdint>

#include "rules/expr.h"

namespace vigie::rules {
namespace {

constexpr double kPi = 3.14159265358979323846;
double Rad(double deg) { return deg * kPi / 180.0; }
double Deg(double rad) { return rad * 180.0 / kPi; }

}  // namespace

double SunAltitude(int64_t utc_ms, const Location& loc) {
  // Julian day and Julian century (J2000.0 epoch). UT is used for TT (delta-T ~ 1 min is
  // negligible at this precision).
  const double jd = static_cast<double>(utc_ms) / 86400000.0 + 2440587.5;
  const double t = (jd - 2451545.0) / 36525.0;

  const double l0 = std::fmod(280.46646 + t * (36000.76983 + t * 0.0003032), 360.0);  // mean long.
  const double m = 357.52911 + t * (35999.05029 - 0.0001537 * t);                    // mean anomaly
  const double e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t);               // eccentricity
  const double c = std::sin(Rad(m)) * (1.914602 - t * (0.004817 + 0.000014 * t)) +
                   std::sin(Rad(2 * m)) * (0.019993 - 0.000101 * t) +
                   std::sin(Rad(3 * m)) * 0.000289;  // equation of centre
  const double true_long = l0 + c;
  const double omega = 125.04 - 1934.136 * t;
  const double app_long = true_long - 0.00569 - 0.00478 * std::sin(Rad(omega));
  const double obliq_mean =
      23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0;
  const double obliq = obliq_mean + 0.00256 * std::cos(Rad(omega));
  const double decl = std::asin(std::sin(Rad(obliq)) * std::sin(Rad(app_long)));  // radians

  const double y = std::pow(std::tan(Rad(obliq / 2.0)), 2);
  const double eot_min =
      4.0 * Deg(y * std::sin(2 * Rad(l0)) - 2 * e * std::sin(Rad(m)) +
                4 * e * y * std::sin(Rad(m)) * std::cos(2 * Rad(l0)) -
                0.5 * y * y * std::sin(4 * Rad(l0)) - 1.25 * e * e * std::sin(2 * Rad(m)));

  // Minutes since UTC midnight of the instant (floor division keeps it in [0, 1440)).
  int64_t ms_of_day = utc_ms % 86400000;
  if (ms_of_day < 0) ms_of_day += 86400000;
  const double utc_min = static_cast<double>(ms_of_day) / 60000.0;
  double tst = std::fmod(utc_min + eot_min + 4.0 * loc.lon, 1440.0);  // true solar time
  if (tst < 0) tst += 1440.0;
  const double hour_angle = tst / 4.0 - 180.0;  // degrees, 0 at solar noon

  const double lat = Rad(loc.lat);
  double cos_zen = std::sin(lat) * std::sin(decl) +
                   std::cos(lat) * std::cos(decl) * std::cos(Rad(hour_angle));
  if (cos_zen > 1) cos_zen = 1;
  if (cos_zen < -1) cos_zen = -1;
  return 90.0 - Deg(std::acos(cos_zen));
}

}  // namespace vigie::rules
