#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "rules/timefmt.h"
#include "rules/value.h"

using namespace vigie::rules;

TEST_CASE("timefmt: RFC 3339 with milliseconds, UTC", "[timefmt]") {
  CHECK(FormatRfc3339Ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339Ms(1795726800000) == "2026-11-26T21:00:00.000Z");
  CHECK(FormatRfc3339Ms(1795726800123) == "2026-11-26T21:00:00.123Z");
  CHECK(FormatRfc3339Ms(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339Ms(951782400000) == "2000-02-29T00:00:00.000Z");  // leap day
}

TEST_CASE("timefmt: parsing accepts Z, offsets, fractions; rejects the rest", "[timefmt]") {
  int64_t t = 0;
  REQUIRE(ParseRfc3339("2026-11-26T22:00:00Z", &t));
  CHECK(t == 1795730400000);
  REQUIRE(ParseRfc3339("2026-11-26T23:00:00+01:00", &t));
  CHECK(t == 1795730400000);
  REQUIRE(ParseRfc3339("2026-11-26T21:30:00-00:30", &t));
  CHECK(t == 1795730400000);
  REQUIRE(ParseRfc3339("2026-11-26T22:00:00.5Z", &t));
  CHECK(t == 1795730400500);
  REQUIRE(ParseRfc3339("2026-11-26T22:00:00.123456789Z", &t));
  CHECK(t == 1795730400123);  // truncated to ms
  REQUIRE(ParseRfc3339("2026-11-26 22:00:00z", &t));
  CHECK(t == 1795730400000);
  for (const char* bad : {"", "2026-11-26", "2026-11-26T22:00:00", "2026-13-01T00:00:00Z",
                          "2026-02-29T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T22:00:00.Z",
                          "2026-11-26T22:00:00+1:00", "2026-11-26T22:00:00Zjunk", "26-11-26T22:00:00Z"}) {
    INFO(bad);
    CHECK_FALSE(ParseRfc3339(bad, &t));
  }
}

TEST_CASE("timefmt: civil days round trip", "[timefmt]") {
  for (int64_t d = -800000; d <= 800000; d += 997) {
    int64_t y;
    unsigned m, dd;
    CivilFromDays(d, &y, &m, &dd);
    CHECK(DaysFromCivil(y, m, dd) == d);
  }
}

TEST_CASE("timefmt: hand-written RFC 3339 digits match a printf reference", "[timefmt]") {
  // The reference: the snprintf form FormatRfc3339Ms replaced.
  auto reference = [](int64_t ms) {
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
      rem += 86400000;
      --days;
    }
    int64_t y;
    unsigned m, d;
    CivilFromDays(days, &y, &m, &d);
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                          static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600000),
                          static_cast<long long>(rem / 60000 % 60),
                          static_cast<long long>(rem / 1000 % 60), static_cast<long long>(rem % 1000));
    return std::string(buf, static_cast<size_t>(n));
  };
  uint64_t x = 88172645463325252ull;  // xorshift: a fixed, reproducible spread of instants
  for (int i = 0; i < 100000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // -1000 .. 12000 years around the epoch: both four-digit years and the general form.
    const int64_t ms = static_cast<int64_t>(x % 410000000000000ull) - 31600000000000;
    INFO(ms);
    REQUIRE(FormatRfc3339Ms(ms) == reference(ms));
  }
  CHECK(FormatRfc3339Ms(253402300799999) == "9999-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339Ms(253402300800000) == "10000-01-01T00:00:00.000Z");
}

TEST_CASE("value: numbers print in their shortest exact form", "[value]") {
  auto fmt = [](double v) {
    std::string s;
    AppendNumber(&s, v);
    return s;
  };
  CHECK(fmt(30) == "30");
  CHECK(fmt(2.5) == "2.5");
  CHECK(fmt(-1000) == "-1000");
  CHECK(fmt(0.1) == "0.1");
  CHECK(fmt(-0.0) == "0");
  CHECK(fmt(1e21) == "1e+21");
  CHECK(fmt(1.0 / 3) == "0.3333333333333333");
  CHECK(fmt(9007199254740991.0) == "9007199254740991");
  // Integral values from 2^53 up take an exponent, never a long integer literal.
  CHECK(fmt(9007199254740992.0) == "9.007199254740992e+15");
  CHECK(fmt(777777777777777777775.04) == "7.777777777777778e+20");
  CHECK(fmt(-1.5e19) == "-1.5e+19");
  CHECK(std::stod(fmt(777777777777777777775.04)) == 777777777777777777775.04);
  std::string s;
  AppendText(&s, Value::Bool(true));
  AppendText(&s, Value::String("/x/"));
  AppendText(&s, Value::Missing());
  CHECK(s == "true/x/");
  CHECK(SameValue(Value::Number(1), Value::Number(1)));
  CHECK_FALSE(SameValue(Value::Number(1), Value::String("1")));
  CHECK_FALSE(SameValue(Value::Missing(), Value::Missing()));
}
