#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

#include "daemon/util/log.h"

using namespace vigie::daemon;

TEST_CASE("log: line format, levels, printf") {
  std::vector<std::string> lines;
  Logger log([&](std::string_view l) { lines.emplace_back(l); });
  log.Info("checkpoint", "wrote 3 keys");
  log.Debug("checkpoint", "hidden at info");
  log.Logf(LogLevel::kWarn, "zmq", "dropped %d of %s", 4, "batch");
  log.set_level(LogLevel::kError);
  log.Warn("zmq", "hidden at error");
  log.Error("app", "boom");
  REQUIRE(lines.size() == 3);
  std::regex re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR) [a-z]+: .*\n$)");
  for (const auto& l : lines) CHECK(std::regex_match(l, re));
  CHECK(lines[0].substr(25) == "INFO checkpoint: wrote 3 keys\n");
  CHECK(lines[1].substr(25) == "WARN zmq: dropped 4 of batch\n");
  CHECK(lines[2].substr(25) == "ERROR app: boom\n");
}

TEST_CASE("log: FormatUtcMs and ParseLogLevel") {
  CHECK(Logger::FormatUtcMs(1764195000123) == "2025-11-26T22:10:00.123Z");
  CHECK(Logger::FormatUtcMs(-1) == "1969-12-31T23:59:59.999Z");
  LogLevel l;
  CHECK(ParseLogLevel("warning", &l));
  CHECK(l == LogLevel::kWarn);
  CHECK(ParseLogLevel("debug", &l));
  CHECK(l == LogLevel::kDebug);
  CHECK_FALSE(ParseLogLevel("loud", &l));
}

TEST_CASE("log: rate limit per call site with a suppressed count") {
  std::vector<std::string> lines;
  Logger log([&](std::string_view l) { lines.emplace_back(l.substr(25)); });
  RateLimitedLog rl(&log, 2);
  CHECK(rl.LogAt(1000, LogLevel::kWarn, "src", "bad 1"));
  CHECK(rl.LogAt(1100, LogLevel::kWarn, "src", "bad 2"));
  CHECK_FALSE(rl.LogAt(1200, LogLevel::kWarn, "src", "bad 3"));
  CHECK_FALSE(rl.LogAt(1999, LogLevel::kWarn, "src", "bad 4"));
  CHECK(rl.LogAt(2000, LogLevel::kWarn, "src", "bad 5"));
  CHECK(rl.LogAt(2001, LogLevel::kWarn, "src", "bad 6"));
  CHECK(rl.suppressed_total() == 2);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "WARN src: bad 1\n");
  CHECK(lines[2] == "WARN src: bad 5 (2 suppressed)\n");
  CHECK(lines[3] == "WARN src: bad 6\n");
}
