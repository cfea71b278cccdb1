// Golden replay cases (tests/rules/golden/*) and the replay driver's own semantics
// (INTERFACES.md "vigie replay"): virtual time from the events, no-ts events, earlier ts
// rejected, `until` firing due timers, seq 1, 2, 3 ...
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "plugins/codec/json_decoder.h"
#include "rules/replay.h"
#include "tests/rules/test_support.h"

namespace fs = std::filesystem;
using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

int64_t ParseUntil(const std::string& text) {
  std::string t = Trim(text);
  int64_t ms;
  if (ParseRfc3339(t, &ms)) return ms;
  return std::stoll(t);
}

uint64_t StatValue(const RuleStats& st, const std::string& what) {
  if (what == "evaluations") return st.evaluations.load();
  if (what == "activations") return st.activations.load();
  if (what == "deactivations") return st.deactivations.load();
  if (what.rfind("error:", 0) == 0) {
    for (int e = 0; e < RuleStats::kErrorCount_; ++e)
      if (what.substr(6) == RuleStats::ErrorName(e)) return st.errors[e].load();
  }
  FAIL("unknown stat " << what);
  return 0;
}

struct CaseResult {
  std::vector<std::string> actual, expected;
  std::vector<size_t> rejected;
};

void RunCase(const fs::path& dir) {
  INFO("golden case " << dir.filename().string());
  auto rs = MustCompile(ReadFile(dir / "rules.yaml"), (dir / "rules.yaml").string());
  FixedOffsetZone paris_winter(3600);
  Collect sink;
  ReplayDriver driver(rs, &paris_winter, Location{}, &sink);
  vigie::codec::JsonDecoder decoder;
  std::vector<size_t> rejected;
  size_t lineno = 0;
  for (const std::string& line : Lines(ReadFile(dir / "events.jsonl"))) {
    ++lineno;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    Event ev;
    std::string error;
    INFO("events.jsonl:" << lineno);
    REQUIRE(decoder.DecodeEvent(line, driver.last_time(), &ev, &error));
    if (!driver.Feed(ev, &error)) {
      CHECK_FALSE(error.empty());
      rejected.push_back(lineno);
    }
  }
  std::optional<int64_t> until;
  if (fs::exists(dir / "until")) until = ParseUntil(ReadFile(dir / "until"));
  driver.Finish(until);

  std::vector<size_t> want_rejected;
  if (fs::exists(dir / "rejected"))
    for (const auto& l : Lines(ReadFile(dir / "rejected")))
      if (!Trim(l).empty()) want_rejected.push_back(std::stoul(l));
  CHECK(rejected == want_rejected);

  // seq: 1, 2, 3 ... in emission order; outputs in time order.
  for (size_t i = 0; i < sink.outs.size(); ++i) {
    CHECK(sink.outs[i].seq == i + 1);
    if (i) CHECK(sink.outs[i - 1].ts_ms <= sink.outs[i].ts_ms);
  }
  std::string actual = RenderAll(sink.outs);
  std::string expected;
  for (const auto& l : Lines(ReadFile(dir / "expected.jsonl")))
    if (!Trim(l).empty()) expected += RenderExpected(l) + "\n";
  CHECK(actual == expected);

  if (fs::exists(dir / "stats")) {
    for (const auto& l : Lines(ReadFile(dir / "stats"))) {
      std::stringstream ss(l);
      std::string rule, what;
      uint64_t n;
      if (!(ss >> rule >> what >> n)) continue;
      int idx = rs->FindRule(rule);
      INFO("stats line: " << l);
      REQUIRE(idx >= 0);
      CHECK(StatValue(driver.engine().stats(idx), what) == n);
    }
  }
}

}  // namespace

TEST_CASE("golden replay cases match their hand-derived outputs", "[replay][golden]") {
  fs::path root(VIGIE_RULES_GOLDEN_DIR);
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 11);
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.filename().string()) { RunCase(c); }
  }
}

// The spec's own worked examples, when the shared spec folder is present (it is not part of the
// repository; the cases in golden/ are).
TEST_CASE("spec examples replay as in /work/shared/spec/examples", "[replay][golden]") {
  fs::path root("/work/shared/spec/examples");
  if (!fs::exists(root)) return;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    fs::path until = e.path() / "until";
    // INTERFACES.md: --until 1795729200000 for every example.
    auto rs = MustCompile(ReadFile(e.path() / "rules.yaml"));
    FixedOffsetZone tz(3600);
    Collect sink;
    ReplayDriver driver(rs, &tz, Location{}, &sink);
    vigie::codec::JsonDecoder decoder;
    for (const auto& line : Lines(ReadFile(e.path() / "events.jsonl"))) {
      if (Trim(line).empty()) continue;
      Event ev;
      std::string err;
      REQUIRE(decoder.DecodeEvent(line, driver.last_time(), &ev, &err));
      REQUIRE(driver.Feed(ev, &err));
    }
    driver.Finish(int64_t{1795729200000});
    std::string expected;
    for (const auto& l : Lines(ReadFile(e.path() / "expected.jsonl")))
      if (!Trim(l).empty()) expected += RenderExpected(l) + "\n";
    INFO(e.path().string());
    CHECK(RenderAll(sink.outs) == expected);
  }
}

namespace {
const char* kFaultRule = R"(
rules:
  - name: fault
    on: status
    when: status == "fault"
    then:
      - command: {target: "ops/{device}", action: fix}
    otherwise:
      - command: {target: "ops/{device}", action: fine}
  - name: quiet
    on: status
    absent_for: 1m
    then:
      - command: {target: "ops/{device}", action: quiet}
)";
}

TEST_CASE("replay: an event without ts takes the previous event's time", "[replay]") {
  auto rs = MustCompile(kFaultRule);
  FixedOffsetZone tz(3600);
  Collect sink;
  ReplayDriver d(rs, &tz, Location{}, &sink);
  std::string err;
  REQUIRE(d.Feed(MakeEvent(kT0 + 5 * kSec, "status", {{"device", "a"}, {"status", "ok"}}), &err));
  Event no_ts = MakeEvent(0, "status", {{"device", "a"}, {"status", "fault"}});
  no_ts.has_ts = false;
  no_ts.ts_ms = 42;  // whatever the decoder put there, replay uses the previous event's time
  REQUIRE(d.Feed(no_ts, &err));
  CHECK(d.last_time() == kT0 + 5 * kSec);
  REQUIRE(sink.outs.size() == 1);
  CHECK(sink.outs[0].ts_ms == kT0 + 5 * kSec);
  CHECK(sink.outs[0].action == "fix");
  CHECK(sink.outs[0].seq == 1);
}

TEST_CASE("replay: the very first event without ts is at the epoch", "[replay]") {
  auto rs = MustCompile(kFaultRule);
  FixedOffsetZone tz(0);
  Collect sink;
  ReplayDriver d(rs, &tz, Location{}, &sink);
  Event e = MakeEvent(0, "status", {{"device", "a"}, {"status", "fault"}});
  e.has_ts = false;
  e.ts_ms = 123456;
  std::string err;
  REQUIRE(d.Feed(e, &err));
  REQUIRE(sink.outs.size() == 1);
  CHECK(sink.outs[0].ts_ms == 0);
}

TEST_CASE("replay: an earlier ts is rejected, processes nothing, and time does not go back",
          "[replay]") {
  auto rs = MustCompile(kFaultRule);
  FixedOffsetZone tz(3600);
  Collect sink;
  ReplayDriver d(rs, &tz, Location{}, &sink);
  std::string err;
  REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "ok"}}), &err));
  CHECK_FALSE(d.Feed(MakeEvent(kT0 - 1, "status", {{"device", "a"}, {"status", "fault"}}), &err));
  CHECK(err.find("earlier") != std::string::npos);
  CHECK(sink.outs.empty());
  CHECK(d.last_time() == kT0);
  // The same instant is fine.
  REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "fault"}}), &err));
  REQUIRE(sink.outs.size() == 1);
  CHECK(d.engine().stats(0).evaluations.load() == 2);
}

TEST_CASE("replay: Finish fires timers due at or before until, with their own instants",
          "[replay]") {
  auto rs = MustCompile(kFaultRule);
  FixedOffsetZone tz(3600);
  SECTION("until before the deadline: nothing") {
    Collect sink;
    ReplayDriver d(rs, &tz, Location{}, &sink);
    std::string err;
    REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "ok"}}), &err));
    d.Finish(kT0 + kMin - 1);
    CHECK(sink.outs.empty());
  }
  SECTION("until exactly at the deadline: fires, ts = the deadline") {
    Collect sink;
    ReplayDriver d(rs, &tz, Location{}, &sink);
    std::string err;
    REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "ok"}}), &err));
    d.Finish(kT0 + kMin);
    REQUIRE(sink.outs.size() == 1);
    CHECK(sink.outs[0].ts_ms == kT0 + kMin);
    CHECK(sink.outs[0].action == "quiet");
  }
  SECTION("until long after: fires at the deadline, not at until") {
    Collect sink;
    ReplayDriver d(rs, &tz, Location{}, &sink);
    std::string err;
    REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "ok"}}), &err));
    d.Finish(kT0 + 60 * kMin);
    REQUIRE(sink.outs.size() == 1);
    CHECK(sink.outs[0].ts_ms == kT0 + kMin);
  }
  SECTION("no until: the last event's time") {
    Collect sink;
    ReplayDriver d(rs, &tz, Location{}, &sink);
    std::string err;
    REQUIRE(d.Feed(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "ok"}}), &err));
    REQUIRE(d.Feed(MakeEvent(kT0 + kMin, "other", {{"device", "a"}}), &err));
    d.Finish(std::nullopt);
    REQUIRE(sink.outs.size() == 1);
    CHECK(sink.outs[0].ts_ms == kT0 + kMin);
  }
}

TEST_CASE("replay is deterministic: two runs give identical outputs", "[replay]") {
  auto rs = MustCompile(kFaultRule);
  FixedOffsetZone tz(3600);
  std::string runs[2];
  for (auto& r : runs) {
    Collect sink;
    ReplayDriver d(rs, &tz, Location{}, &sink);
    std::string err;
    for (int i = 0; i < 50; ++i) {
      const char* st = (i % 3 == 0) ? "fault" : "ok";
      std::string dev = "d" + std::to_string(i % 4);
      REQUIRE(d.Feed(MakeEvent(kT0 + i * 20 * kSec, "status", {{"device", dev.c_str()}, {"status", st}}), &err));
    }
    d.Finish(kT0 + 60 * kMin);
    for (const auto& o : sink.outs) r += std::to_string(o.seq) + " " + Render(o) + "\n";
  }
  CHECK_FALSE(runs[0].empty());
  CHECK(runs[0] == runs[1]);
}
