// The durable state's format across versions: a checkpoint written in format 1 (vigie up to
// 8ca9379, tests/rules/testdata/state-format1.txt) restores to the same groups as an engine that
// saw the same events, the next checkpoint rewrites them in format 2 and deletes the format 1
// keys no earlier than the delta holding their format 2 form, and a crash in between loses
// nothing.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "rules/engine.h"
#include "tests/rules/state_support.h"
#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The rules (testdata/state-format1.yaml) and the events state-format1.txt was written with
// (keep them as they are).
std::string Rules() { return ReadFile(VIGIE_RULES_TESTDATA_DIR "/state-format1.yaml"); }

std::vector<Event> Events() {
  return {
  // pedestrian: 4 events, weights with fractions (stddev, avg) and a repeated device.
  MakeEvent(kT0, "pedestrian", {{"device", "p1"}, {"crossing", "x1"}, {"w", 2.5}}),
  MakeEvent(kT0 + 5 * kSec, "pedestrian", {{"device", "p2"}, {"crossing", "x1"}, {"w", 4}}),
  MakeEvent(kT0 + 8 * kSec, "pedestrian", {{"device", "p1"}, {"crossing", "x2"}, {"w", -1}}),
  MakeEvent(kT0 + 12 * kSec, "pedestrian", {{"device", "p1"}, {"crossing", "x1"}, {"w", 1e300}}),
  MakeEvent(kT0 + 13 * kSec, "traffic", {{"zone", "north"}, {"lane", 1}, {"vehicles", 12}, {"speed", 48.5}}),
  MakeEvent(kT0 + 14 * kSec, "traffic", {{"zone", "north"}, {"lane", 1}, {"vehicles", 20}, {"speed", 31}}),
  MakeEvent(kT0 + 15 * kSec, "traffic", {{"zone", "south"}, {"lane", 2}, {"vehicles", 3}, {"speed", 0}}),
  MakeEvent(kT0 + 16 * kSec, "level", {{"bin", "b7"}, {"pct", 90}}),
  MakeEvent(kT0 + 17 * kSec, "level", {{"bin", "b7"}, {"pct", 95}}),
  MakeEvent(kT0 + 18 * kSec, "level", {{"bin", "b7"}, {"pct", 90}}),
  MakeEvent(kT0 + 19 * kSec, "badge", {{"door", "d1"}, {"person", "ann"}}),
  MakeEvent(kT0 + 20 * kSec, "temp", {{"device", "s1"}, {"t", 35}, {"unit", "C"}, {"ok", true}}),
  MakeEvent(kT0 + 25 * kSec, "hb", {{"device", "c1"}}),
  MakeEvent(kT0 + 30 * kSec, "status", {{"device", "d1"}, {"status", "fault"}, {"code", 7}, {"zone", "z9"}}),
  MakeEvent(kT0 + 31 * kSec, "status", {{"device", "d2"}, {"status", "ok"}}),
  };
}

// Later events, and times at which every kind of timer has fallen due.
std::vector<Event> Later() {
  return {
      MakeEvent(kT0 + 40 * kSec, "pedestrian", {{"device", "p3"}, {"crossing", "x1"}, {"w", 7}}),
      MakeEvent(kT0 + 41 * kSec, "level", {{"bin", "b7"}, {"pct", 40}}),
      MakeEvent(kT0 + 42 * kSec, "traffic", {{"zone", "north"}, {"lane", 1}, {"vehicles", 1}, {"speed", 60}}),
      MakeEvent(kT0 + 43 * kSec, "badge", {{"door", "d1"}, {"person", "bob"}}),
      MakeEvent(kT0 + 44 * kSec, "status", {{"device", "d1"}, {"status", "ok"}}),
  };
}
constexpr int64_t kLast = kT0 + 31 * kSec;  // the fixture's last event
constexpr int64_t kEnd = kT0 + 2 * 3600 * kSec;

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

KV Format1() {
  std::ifstream in(VIGIE_RULES_TESTDATA_DIR "/state-format1.txt");
  REQUIRE(in.good());
  KV kv;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.find(' ');
    REQUIRE(sp != std::string::npos);
    kv[FromHex(line.substr(0, sp))] = FromHex(line.substr(sp + 1));
  }
  return kv;
}

EngineOptions Opts(const TimeZone* tz) {
  EngineOptions o;
  o.tz = tz;
  return o;
}

// The outputs of an engine from here on: the later events, then every timer.
std::vector<std::string> Rest(Engine& e) {
  Collect out;
  for (const Event& ev : Later()) e.Process(ev, ev.ts_ms, out);
  e.AdvanceTo(kEnd, out);
  std::vector<std::string> r;
  for (const Output& o : out.outs) r.push_back(Render(o));
  return r;
}

bool IsFormat2Key(const std::string& k) { return k.size() > 2 && k[2] == '\x02'; }
bool IsFormat1Key(const std::string& k) { return !IsFormat2Key(k) && !IsPackKey(k); }

}  // namespace

TEST_CASE("state format: a format 1 checkpoint restores to the groups an uninterrupted run has",
          "[engine][state][format]") {
  auto rs = MustCompile(Rules());
  FixedOffsetZone tz(3600);
  const KV old = Format1();
  REQUIRE(old.size() == 9);  // every rule's groups but the inactive stateless d2

  Engine fresh(rs, Opts(&tz));
  Collect ignored;
  for (const Event& ev : Events()) fresh.Process(ev, ev.ts_ms, ignored);

  Engine up(rs, Opts(&tz));
  for (const auto& [k, v] : old) CHECK(up.Restore(k, v));
  CHECK(up.group_count() == 9);
  Collect at_start;
  up.FinishRestore(kLast, at_start);
  CHECK(at_start.outs.empty());  // nothing was due, and active groups do not fire again

  // The next checkpoint holds every group in packs (format 3), each group byte for byte what
  // the uninterrupted engine writes, and deletes the format 1 keys.
  StateDelta want, got;
  fresh.TakeAll(&want);
  up.TakeAll(&got);
  KV want_kv, got_kv = old;
  Apply(want, &want_kv);
  Apply(got, &got_kv);
  CHECK(Groups(got_kv) == Groups(want_kv));
  CHECK(Groups(got_kv).size() == 9);
  CHECK(std::set<std::string>(got.deletes.begin(), got.deletes.end()).size() == 9);
  for (const auto& [k, v] : got_kv) CHECK(IsPackKey(k));
  // Format 2 is smaller: the fixture's groups took this many bytes in format 1.
  size_t old_bytes = 0, new_bytes = 0;
  for (const auto& [k, v] : old) old_bytes += k.size() + v.size();
  for (const auto& [k, v] : got_kv) new_bytes += k.size() + v.size();
  CHECK(new_bytes * 3 < old_bytes * 2);

  // And they behave alike from here on: commands, alerts, resolves, timers of every kind.
  const std::vector<std::string> a = Rest(fresh), b = Rest(up);
  CHECK(a.size() >= 6);
  CHECK(a == b);
  // A later checkpoint deletes nothing more of format 1.
  StateDelta later;
  up.TakeDirty(&later);
  for (const auto& k : later.deletes) CHECK_FALSE(IsFormat1Key(k));
}

TEST_CASE("state format: in slices, format 1 keys go with the round's last slice; a crash in "
          "between restores every group once", "[engine][state][format]") {
  auto rs = MustCompile(Rules());
  FixedOffsetZone tz(3600);
  const KV old = Format1();

  Engine up(rs, Opts(&tz));
  for (const auto& [k, v] : old) REQUIRE(up.Restore(k, v));
  Collect none;
  up.FinishRestore(kLast, none);
  std::vector<StateDelta> slices;
  for (bool done = false; !done;) {
    slices.emplace_back();
    done = up.TakeDirtySlice(&slices.back(), 2);
  }
  REQUIRE(slices.size() >= 4);  // 9 groups in packs of one rule each, 2 groups a slice
  size_t in_packs = 0;
  for (size_t i = 0; i + 1 < slices.size(); ++i) {
    INFO("slice " << i);
    for (const auto& k : slices[i].deletes) CHECK_FALSE(IsFormat1Key(k));
    in_packs += GroupsPut(slices[i]).size();
  }
  in_packs += GroupsPut(slices.back()).size();
  CHECK(in_packs == 9);
  CHECK(slices.back().deletes.size() == 9);

  // Killed after the first three slices were written: the store has both forms of their groups.
  KV crashed = old;
  size_t written = 0;
  for (size_t i = 0; i < 3; ++i) {
    Apply(slices[i], &crashed);
    written += GroupsPut(slices[i]).size();
  }
  CHECK(written >= 3);
  CHECK(written < 9);
  size_t packed = 0, format1 = 0;
  for (const auto& [k, v] : Groups(crashed)) {
    packed += IsFormat2Key(k) ? 1 : 0;  // a packed group, under its own key
    format1 += IsFormat1Key(k) ? 1 : 0;
  }
  CHECK(packed == written);
  CHECK(format1 == 9);
  Engine again(rs, Opts(&tz));
  size_t restored = 0;
  size_t packs = 0;
  for (const auto& [k, v] : crashed) {
    restored += again.Restore(k, v);  // packs come first
    packs += IsPackKey(k);
  }
  CHECK(restored == packs + (9 - written));
  CHECK(again.group_count() == 9);
  again.FinishRestore(kLast, none);
  StateDelta d;
  again.TakeAll(&d);
  Apply(d, &crashed);
  CHECK(Groups(crashed).size() == 9);
  for (const auto& [k, v] : crashed) CHECK(IsPackKey(k));

  Engine fresh(rs, Opts(&tz));
  for (const Event& ev : Events()) fresh.Process(ev, ev.ts_ms, none);
  CHECK(Rest(fresh) == Rest(again));
}
