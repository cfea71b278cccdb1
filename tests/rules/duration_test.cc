#include <catch2/catch.hpp>

#include <string>

#include "rules/expr.h"

namespace vigie::rules {
namespace {

TEST_CASE("ParseDuration accepts units and ordered combinations", "[duration]") {
  struct Row {
    const char* text;
    int64_t ms;
  };
  const Row rows[] = {
      {"500ms", 500},
      {"10s", 10000},
      {"2m", 120000},
      {"1h", 3600000},
      {"1d", 86400000},
      {"1h30m", 5400000},
      {"1m30s500ms", 90500},
      {"1d2h3m4s5ms", 86400000 + 2 * 3600000 + 3 * 60000 + 4000 + 5},
      {"0s", 0},
      {"90s", 90000},
      {"1s1ms", 1001},
      {"106751991167d", 106751991167LL * 86400000},
  };
  for (const Row& r : rows) {
    INFO(r.text);
    int64_t ms = -1;
    std::string err;
    REQUIRE(ParseDuration(r.text, &ms, &err));
    CHECK(ms == r.ms);
    CHECK(err.empty());
  }
}

TEST_CASE("ParseDuration rejects malformed durations with a clear message", "[duration]") {
  struct Row {
    const char* text;
    const char* message_part;
  };
  const Row rows[] = {
      {"", "empty duration"},
      {"10", "has no unit"},
      {"-5s", "negative duration"},
      {"+5s", "sign"},
      {"30m1h", "out of order"},
      {"1s1m", "out of order"},
      {"1h1h", "appears twice"},
      {"1x", "unknown unit 'x'"},
      {"10sec", "unknown unit 'sec'"},
      {"10S", "unknown unit 'S'"},
      {"1.5h", "whole numbers"},
      {"1h 30m", "spaces"},
      {" 1h", "spaces"},
      {"h", "expected a number"},
      {"1h30", "missing unit after 1h30"},
      {"99999999999999999999s", "too large"},
      {"106751991168d", "too large"},
      {"106751991167d8h", "too large"},
  };
  for (const Row& r : rows) {
    INFO(r.text);
    int64_t ms = 12345;
    std::string err;
    REQUIRE_FALSE(ParseDuration(r.text, &ms, &err));
    CHECK(ms == 12345);  // untouched on failure
    CHECK_THAT(err, Catch::Contains(r.message_part));
  }
}

TEST_CASE("ParseDuration error messages quote the input and show the accepted form",
          "[duration]") {
  int64_t ms = 0;
  std::string err;
  REQUIRE_FALSE(ParseDuration("10", &ms, &err));
  CHECK(err == "duration '10' has no unit (expected e.g. 500ms, 10s, 2m, 1h, 1d or 1h30m)");
  REQUIRE_FALSE(ParseDuration("30m1h", &ms, &err));
  CHECK(err == "units out of order in '30m1h': write larger units first (d, h, m, s, ms), e.g. "
               "1h30m");
}

}  // namespace
}  // namespace vigie::rules
