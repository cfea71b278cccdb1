// Engine: durable state (TakeDirty/Restore round trips, timers due while down), hot swap
// (SwapRules), sharding (RouteMask + shard-local groups), timer ordering at one instant and
// per-rule stats.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

#include "rules/bytes.h"
#include "rules/engine.h"
#include "tests/rules/state_support.h"
#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

// The durable store, as the state layer would apply a StateDelta.
struct Store {
  KV kv;
  void Apply(const StateDelta& d) { testing::Apply(d, &kv); }
};

EngineOptions Opts(const TimeZone* tz, int shard = 0, int count = 1) {
  EngineOptions o;
  o.tz = tz;
  o.shard_index = shard;
  o.shard_count = count;
  return o;
}

const char* kStateRules = R"(rules:
  - name: busy
    on: pedestrian
    group_by: crossing
    window: {sliding: 1m}
    let:
      n: count()
    when: n >= 3
    then:
      - command: {target: "b/{crossing}", action: busy, n: "{n}"}
    otherwise:
      - command: {target: "b/{crossing}", action: calm, n: "{n}"}
  - name: hot
    on: temp
    when: t > 30
    for: 1m
    then:
      - alert: {severity: warning, summary: "Hot {device} {t}"}
  - name: silent
    on: hb
    absent_for: 2m
    then:
      - alert: {severity: info, summary: "Silent {device}"}
  - name: fault
    on: status
    when: status == "fault"
    then:
      - alert: {severity: critical, summary: "F {device} {code}", labels: {c: "{code}"}}
    otherwise:
      - command: {target: "ops/{device}", action: ok}
)";

std::vector<Event> StreamA() {
  return {
      MakeEvent(kT0, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
      MakeEvent(kT0 + 10 * kSec, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
      MakeEvent(kT0 + 20 * kSec, "temp", {{"device", "s1"}, {"t", 35}}),
      MakeEvent(kT0 + 25 * kSec, "hb", {{"device", "c1"}}),
      MakeEvent(kT0 + 30 * kSec, "status", {{"device", "d1"}, {"status", "fault"}, {"code", 7}}),
  };
}

std::vector<Event> StreamB() {
  return {
      MakeEvent(kT0 + 40 * kSec, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
      MakeEvent(kT0 + 50 * kSec, "status", {{"device", "d1"}, {"status", "ok"}}),
      MakeEvent(kT0 + 55 * kSec, "temp", {{"device", "s1"}, {"t", 36}}),
  };
}

void Feed(Engine& e, const std::vector<Event>& evs, OutputSink& out) {
  for (const auto& ev : evs) e.Process(ev, ev.ts_ms, out);
}

}  // namespace

TEST_CASE("engine state: a restore mid-stream gives the same outputs as an uninterrupted run",
          "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);

  // Uninterrupted.
  Engine e1(rs, Opts(&tz));
  Collect before, after1;
  Feed(e1, StreamA(), before);
  // d1's fault fired before the checkpoint.
  REQUIRE(BriefAll(before.outs) == std::vector<std::string>{"21:00:30.000 fault d1 alert firing critical F d1 7"});
  Store store;
  StateDelta d;
  e1.TakeDirty(&d);
  store.Apply(d);
  // One pack per rule (each has one group here).
  CHECK(store.kv.size() == 4);
  const KV groups = Groups(store.kv);
  CHECK(groups.count(StateKey(*rs, "busy", "x1")) == 1);
  CHECK(groups.count(StateKey(*rs, "hot", "s1")) == 1);
  CHECK(groups.count(StateKey(*rs, "silent", "c1")) == 1);
  CHECK(groups.count(StateKey(*rs, "fault", "d1")) == 1);
  CHECK(store.kv.count(PackKey(*rs, "fault", 1, 0, 0)) == 1);
  Feed(e1, StreamB(), after1);
  e1.AdvanceTo(kT0 + 5 * kMin, after1);

  // Restarted from the checkpoint at 21:00:30.
  Engine e2(rs, Opts(&tz));
  Collect after2;
  for (const auto& [k, v] : store.kv) CHECK(e2.Restore(k, v));
  e2.FinishRestore(kT0 + 30 * kSec, after2);
  CHECK(after2.outs.empty());  // no `then` again for d1, which is already active
  CHECK(e2.group_count() == 4);
  CHECK(e2.stats(3).active_groups.load() == 1);
  Feed(e2, StreamB(), after2);
  e2.AdvanceTo(kT0 + 5 * kMin, after2);

  // Derived by hand: x1's 3rd event at :40 -> busy n 3; d1 ok at :50 -> resolved with the firing
  // summary and labels, then otherwise; x1's :00 event leaves at 21:01:00 -> calm n 2; s1 hot
  // since :20 -> firing at 21:01:20 with its latest t (36); c1 silent since :25 -> 21:02:25.
  const std::vector<std::string> want = {
      "21:00:40.000 busy x1 cmd b/x1 busy n=3",
      "21:00:50.000 fault d1 alert resolved critical F d1 7",
      "21:00:50.000 fault d1 cmd ops/d1 ok",
      "21:01:00.000 busy x1 cmd b/x1 calm n=2",
      "21:01:20.000 hot s1 alert firing warning Hot s1 36",
      "21:02:25.000 silent c1 alert firing info Silent c1",
  };
  CHECK(BriefAll(after1.outs) == want);
  CHECK(BriefAll(after2.outs) == want);
  REQUIRE(after2.outs.size() == after1.outs.size());
  for (size_t i = 0; i < after1.outs.size(); ++i) CHECK(Render(after1.outs[i]) == Render(after2.outs[i]));
  // The resolved alert carries the firing labels too.
  REQUIRE(after2.outs[1].labels.size() == 1);
  CHECK(after2.outs[1].labels[0] == std::pair<std::string, std::string>{"c", "7"});
}

TEST_CASE("engine state: timers that fell due while down fire at FinishRestore with their own "
          "instants", "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine e1(rs, Opts(&tz));
  Collect sink;
  Feed(e1, StreamA(), sink);
  Store store;
  StateDelta d;
  e1.TakeAll(&d);
  store.Apply(d);

  Engine e2(rs, Opts(&tz));
  for (const auto& [k, v] : store.kv) REQUIRE(e2.Restore(k, v));
  Collect out;
  e2.FinishRestore(kT0 + 10 * kMin, out);  // down from 21:00:30 to 21:10:00
  CHECK(BriefAll(out.outs) == std::vector<std::string>{
                                  "21:01:20.000 hot s1 alert firing warning Hot s1 35",
                                  "21:02:25.000 silent c1 alert firing info Silent c1",
                              });
  CHECK(e2.now() == kT0 + 10 * kMin);
  // The window emptied while down: a new event makes count 1, not 3.
  Collect more;
  e2.Process(MakeEvent(kT0 + 10 * kMin, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
             kT0 + 10 * kMin, more);
  e2.Process(MakeEvent(kT0 + 10 * kMin + 1, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
             kT0 + 10 * kMin + 1, more);
  CHECK(more.outs.empty());
}

TEST_CASE("engine state: restore ignores entries of unknown or changed rules and asks to delete "
          "them", "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine e1(rs, Opts(&tz));
  Collect sink;
  Feed(e1, StreamA(), sink);
  StateDelta d;
  e1.TakeDirty(&d);
  REQUIRE(d.puts.size() == 4);  // a pack per rule
  // The same rule names, with `busy` changed.
  std::string changed = kStateRules;
  changed.replace(changed.find("when: n >= 3"), 12, "when: n >= 4");
  auto rs2 = MustCompile(changed);
  Engine e2(rs2, Opts(&tz));
  int restored = 0;
  for (const auto& [k, v] : d.puts) restored += e2.Restore(k, v);
  CHECK(restored == 3);
  std::string nosuch = StateKey(*rs, "busy", "x");
  nosuch.replace(2, 4, "nosu");  // "g/nosu..." : a rule that does not exist
  CHECK_FALSE(e2.Restore(nosuch, "garbage"));
  CHECK_FALSE(e2.Restore("not-a-state-key", ""));
  StateDelta d2;
  e2.TakeDirty(&d2);
  CHECK(std::count(d2.deletes.begin(), d2.deletes.end(), PackKey(*rs, "busy", 1, 0, 0)) == 1);
  CHECK(std::count(d2.deletes.begin(), d2.deletes.end(), nosuch) == 1);
  // The same from a group's own key (format 2), and from a pack of an unknown rule.
  Engine e3(rs2, Opts(&tz));
  CHECK_FALSE(e3.Restore(StateKey(*rs, "busy", "x1"), "\x02"));
  std::string nosuch_pack = PackKey(*rs, "busy", 1, 0, 0);
  nosuch_pack[5] ^= 1;
  CHECK_FALSE(e3.Restore(nosuch_pack, "\x03\x00"));
  StateDelta d3;
  e3.TakeDirty(&d3);
  CHECK(std::count(d3.deletes.begin(), d3.deletes.end(), StateKey(*rs, "busy", "x1")) == 1);
  CHECK(std::count(d3.deletes.begin(), d3.deletes.end(), nosuch_pack) == 1);
}

TEST_CASE("engine state: restore refuses a pending `for` where the rule has none (found by "
          "fuzz_state_restore: it fired forever)", "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  // Format 2 values: flags, last_seen, the set instants (here pending_due only), the group
  // value is the key, no alerts, no window, no event.
  auto value = [](uint8_t flags) {
    std::string b;
    ByteWriter w(&b);
    w.U8(2);
    w.U8(flags);
    w.I64(kT0);
    w.U8(0b1);     // pending_due
    w.I64(-kMin);  // a minute before last_seen: long due
    w.U8(1);
    w.Var(0);
    w.U8(0);
    w.U8(0);
    return b;
  };
  Engine e(rs, Opts(&tz));
  CHECK_FALSE(e.Restore(StateKey(*rs, "silent", "c1"), value(2)));  // absence: no `for`
  CHECK_FALSE(e.Restore(StateKey(*rs, "fault", "d1"), value(2)));   // stateless without `for`
  CHECK_FALSE(e.Restore(StateKey(*rs, "hot", "s1"), value(3)));     // active and pending
  CHECK(e.Restore(StateKey(*rs, "hot", "s2"), value(2)));           // hot has `for: 1m`
  Collect out;
  e.FinishRestore(kT0 + kMin, out);  // returns: nothing fires forever
  CHECK(e.group_count() == 1);
  StateDelta d;
  e.TakeDirty(&d);
  for (const auto& [rule, key] : std::vector<std::pair<std::string, std::string>>{
           {"silent", "c1"}, {"fault", "d1"}, {"hot", "s1"}}) {
    CHECK(std::count(d.deletes.begin(), d.deletes.end(), StateKey(*rs, rule, key)) == 1);
  }
}

TEST_CASE("engine state: TakeDirty returns only what changed since the last call",
          "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  Feed(e, StreamA(), sink);
  StateDelta d;
  e.TakeDirty(&d);
  CHECK(d.puts.size() == 4);
  d.clear();
  e.TakeDirty(&d);
  CHECK(d.empty());
  e.Process(MakeEvent(kT0 + 31 * kSec, "hb", {{"device", "c1"}}), kT0 + 31 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(GroupsPut(d) == std::vector<std::string>{StateKey(*rs, "silent", "c1")});
}

TEST_CASE("engine state: a stateless group is written only when its state changes",
          "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  StateDelta d;
  // `fault` (no `for`): evaluations that leave the group inactive write nothing.
  e.Process(MakeEvent(kT0, "status", {{"device", "d9"}, {"status", "ok"}}), kT0, sink);
  e.Process(MakeEvent(kT0 + kSec, "status", {{"device", "d9"}, {"status", "ok"}}), kT0 + kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.empty());
  // Activation is written; staying active is not written again; deactivation is.
  e.Process(MakeEvent(kT0 + 2 * kSec, "status", {{"device", "d9"}, {"status", "fault"}, {"code", 1}}),
            kT0 + 2 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(GroupsPut(d) == std::vector<std::string>{StateKey(*rs, "fault", "d9")});
  d.clear();
  e.Process(MakeEvent(kT0 + 3 * kSec, "status", {{"device", "d9"}, {"status", "fault"}, {"code", 2}}),
            kT0 + 3 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.empty());
  e.Process(MakeEvent(kT0 + 4 * kSec, "status", {{"device", "d9"}, {"status", "ok"}}), kT0 + 4 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.puts.size() == 1);
  d.clear();
  // `hot` (for: 1m): while pending, every event is written (it carries the event that will fire).
  e.Process(MakeEvent(kT0 + 5 * kSec, "temp", {{"device", "s9"}, {"t", 31}}), kT0 + 5 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.puts.size() == 1);
  d.clear();
  e.Process(MakeEvent(kT0 + 6 * kSec, "temp", {{"device", "s9"}, {"t", 32}}), kT0 + 6 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.puts.size() == 1);
  d.clear();
  e.Process(MakeEvent(kT0 + 7 * kSec, "temp", {{"device", "s9"}, {"t", 20}}), kT0 + 7 * kSec, sink);
  e.TakeDirty(&d);  // the pending `for` was cancelled: written once more
  CHECK(d.puts.size() == 1);
  d.clear();
  e.Process(MakeEvent(kT0 + 8 * kSec, "temp", {{"device", "s9"}, {"t", 20}}), kT0 + 8 * kSec, sink);
  e.TakeDirty(&d);
  CHECK(d.empty());
}

TEST_CASE("engine state: TakeDirtySlice takes a round in slices; the store ends up as with "
          "TakeDirty", "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine sliced(rs, Opts(&tz)), whole(rs, Opts(&tz));
  Store s_sliced, s_whole;
  Collect o1, o2;
  int64_t t = kT0;
  auto both = [&](const Event& ev) {
    sliced.Process(ev, ev.ts_ms, o1);
    whole.Process(ev, ev.ts_ms, o2);
  };
  // 20 groups: 5 devices of each rule.
  for (int i = 0; i < 5; ++i) {
    std::string d = "d" + std::to_string(i);
    both(MakeEvent(t += 100, "pedestrian", {{"device", d.c_str()}, {"crossing", d.c_str()}}));
    both(MakeEvent(t += 100, "temp", {{"device", d.c_str()}, {"t", 35}}));
    both(MakeEvent(t += 100, "hb", {{"device", d.c_str()}}));
    both(MakeEvent(t += 100, "status", {{"device", d.c_str()}, {"status", "fault"}, {"code", i}}));
  }
  // A round of slices of 3 groups, with events between the slices: groups already taken change
  // again (next round), groups not yet taken change (taken once, as they are then). A slice
  // takes whole packs, so here one pack of 5 groups (one rule's) each, and a last slice finds
  // only groups whose packs were written.
  int slices = 0, puts = 0;
  bool done = false;
  while (!done) {
    StateDelta d;
    done = sliced.TakeDirtySlice(&d, 3);
    ++slices;
    CHECK(d.puts.size() <= 1);
    if (!d.puts.empty()) {
      ++puts;
      CHECK(GroupsPut(d).size() == 5);
    }
    s_sliced.Apply(d);
    const std::string dev = "d" + std::to_string(slices % 5);
    both(MakeEvent(t += 100, "hb", {{"device", dev.c_str()}}));
    // Every status event is a transition (fault -> ok, and ok -> fault for d1 and d2 the second
    // time): an evaluation that changes nothing of a stateless group is not written at all, so
    // its last-seen time would legitimately differ between the two stores.
    both(MakeEvent(t += 100, "status", {{"device", dev.c_str()}, {"status", slices <= 5 ? "ok" : "fault"}}));
  }
  CHECK(puts == 4);  // the 4 packs dirty when the round began
  CHECK(slices <= 5);
  // The next round takes what changed during the first; then both stores must agree.
  for (done = false; !done;) {
    StateDelta d;
    done = sliced.TakeDirtySlice(&d, 3);
    s_sliced.Apply(d);
  }
  StateDelta d;
  whole.TakeDirty(&d);
  s_whole.Apply(d);
  const KV g_sliced = Groups(s_sliced.kv), g_whole = Groups(s_whole.kv);
  CHECK(g_sliced.size() == 20);
  CHECK(g_whole.size() == 20);
  for (const auto& [k, v] : g_whole) {
    INFO("group " << k.substr(11));
    CHECK(g_sliced.count(k) == 1);
    if (g_sliced.count(k)) CHECK(g_sliced.at(k) == v);
  }
  // Nothing left: a new round is empty and complete at once.
  StateDelta empty;
  CHECK(sliced.TakeDirtySlice(&empty, 3));
  CHECK(empty.empty());
}

TEST_CASE("engine state: a group evicted in the middle of a slice round is deleted, not put",
          "[engine][state]") {
  // Two rules: two packs, so that a slice of one group takes one of them.
  auto rs = MustCompile(R"(rules:
  - name: fault
    on: status
    when: status == "fault"
    then:
      - alert: {severity: critical, summary: "F {device}"}
  - name: fault2
    on: status
    when: status == "fault"
    then:
      - alert: {severity: critical, summary: "F2 {device}"}
)");
  FixedOffsetZone tz(3600);
  EngineOptions o = Opts(&tz);
  o.idle_evict_ms = 60 * kSec;
  Engine e(rs, o);
  Collect sink;
  Store store;
  // Two groups active (written), then both clear (dirty again): the round has both packs.
  e.Process(MakeEvent(kT0, "status", {{"device", "a"}, {"status", "fault"}}), kT0, sink);
  StateDelta d0;
  e.TakeDirty(&d0);
  store.Apply(d0);
  REQUIRE(store.kv.size() == 2);
  REQUIRE(Groups(store.kv).size() == 2);
  e.Process(MakeEvent(kT0 + kSec, "status", {{"device", "a"}, {"status", "ok"}}), kT0 + kSec, sink);
  StateDelta d1;
  CHECK_FALSE(e.TakeDirtySlice(&d1, 1));  // one of the two
  REQUIRE(d1.puts.size() == 1);
  store.Apply(d1);
  // Both go idle and are evicted before the round ends (the untaken one while still queued).
  e.AdvanceTo(kT0 + 2 * 60 * kSec, sink);
  REQUIRE(e.group_count() == 0);
  StateDelta d2;
  CHECK(e.TakeDirtySlice(&d2, 1));
  CHECK(d2.puts.empty());  // the evicted group is not written
  // The pack of the one that changed since its pack's write goes at once: it holds an older
  // copy, which a restore must not bring back.
  CHECK(d2.deletes.size() == 1);
  store.Apply(d2);
  // The other pack that lost its group is deleted by the next round.
  StateDelta d3;
  CHECK_FALSE(e.TakeDirtySlice(&d3, 1));  // one pack a slice of one
  CHECK(e.TakeDirtySlice(&d3, 1));
  CHECK(d3.puts.empty());
  CHECK(d3.deletes.size() == 1);
  store.Apply(d3);
  CHECK(store.kv.empty());
}

TEST_CASE("engine state: TakeChanged returns only the groups whose activation changed",
          "[engine][state]") {
  auto rs = MustCompile(kStateRules);
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  Feed(e, StreamA(), sink);  // four groups dirty; only fault/d1 activated
  StateDelta d;
  e.TakeChanged(&d);
  REQUIRE(d.puts.size() == 1);
  // In a journal of this shard, numbered 1 (the engine's first checkpoint).
  CHECK(d.puts[0].first == JournalKey(1, 0, 1));
  CHECK(GroupsPut(d) == std::vector<std::string>{StateKey(*rs, "fault", "d1")});
  Store store;
  store.Apply(d);
  d.clear();
  e.TakeChanged(&d);
  CHECK(d.empty());  // nothing changed since
  // The regular checkpoint writes every dirty pack: d1's too, which then holds d1's newest
  // state, so the journal goes in the same delta.
  e.TakeDirty(&d);
  CHECK(d.puts.size() == 4);
  CHECK(d.deletes == std::vector<std::string>{JournalKey(1, 0, 1)});
  for (const auto& [k, v] : d.puts) CHECK(PackNumber(v) == 3);
  store.Apply(d);
  CHECK(store.kv.count(JournalKey(1, 0, 1)) == 0);
  CHECK(Groups(store.kv).size() == 4);
  // An activation after the pack's write is journaled again, and is what a restore takes.
  e.Process(MakeEvent(kT0 + 50 * kSec, "status", {{"device", "d1"}, {"status", "ok"}}),
            kT0 + 50 * kSec, sink);
  d.clear();
  e.TakeChanged(&d);
  REQUIRE(d.puts.size() == 1);
  store.Apply(d);
  REQUIRE(store.kv.count(JournalKey(1, 0, 4)) == 1);
  Engine e2(rs, Opts(&tz));
  for (const auto& [k, v] : store.kv) CHECK(e2.Restore(k, v));
  Collect none;
  e2.FinishRestore(kT0 + 50 * kSec, none);
  CHECK(e2.group_count() == 4);
  CHECK(e2.stats(3).active_groups.load() == 0);  // d1 as of its journal: resolved
  CHECK(none.outs.empty());
  // The restored engine numbers on from the store, and its first round packs d1 and deletes
  // the journal.
  StateDelta d2;
  CHECK(e2.TakeDirtySlice(&d2, 1000));
  REQUIRE(d2.puts.size() == 1);
  CHECK(PackNumber(d2.puts[0].second) == 5);
  CHECK(d2.deletes == std::vector<std::string>{JournalKey(1, 0, 4)});
  store.Apply(d2);
  CHECK(Groups(store.kv).size() == 4);
  StateDelta all;
  e.TakeAll(&all);
  Store uninterrupted;
  uninterrupted.Apply(all);
  CHECK(Groups(store.kv) == Groups(uninterrupted.kv));
}

TEST_CASE("engine eviction: idle groups are dropped from memory and from the store",
          "[engine][state]") {
  auto rs = MustCompile(R"(rules:
  - name: seen
    on: reading
    window: {sliding: 1s}
    let:
      n: count()
    when: n > 100
    then:
      - command: {target: "x/{device}", action: go}
)");
  FixedOffsetZone tz(0);
  EngineOptions o = Opts(&tz);
  o.idle_evict_ms = 2000;
  Engine e(rs, o);
  Collect sink;
  const char* devices[] = {"d0", "d1", "d2", "d3", "d4"};
  for (int i = 0; i < 50; ++i)
    e.Process(MakeEvent(kT0 + i * 10, "reading", {{"device", devices[i % 5]}}), kT0 + i * 10, sink);
  CHECK(e.group_count() == 5);
  StateDelta d;
  e.TakeDirty(&d);
  CHECK(GroupsPut(d).size() == 5);
  Store store;
  store.Apply(d);
  // The window empties after 1 s; the groups are then idle and go 2 s after their last event.
  e.AdvanceTo(kT0 + 2400, sink);
  CHECK(e.group_count() == 5);
  e.AdvanceTo(kT0 + 10000, sink);
  CHECK(e.group_count() == 0);
  d.clear();
  e.TakeDirty(&d);
  CHECK(d.deletes.size() == 1);  // their pack
  CHECK(d.puts.empty());
  store.Apply(d);
  CHECK(store.kv.empty());
  // A group that comes back starts fresh.
  e.Process(MakeEvent(kT0 + 11000, "reading", {{"device", "d1"}}), kT0 + 11000, sink);
  CHECK(e.group_count() == 1);
  CHECK(sink.outs.empty());
}

TEST_CASE("engine swap: unchanged rule keeps state, changed starts fresh, removed is dropped",
          "[engine][swap]") {
  const char* v1 = R"(rules:
  - name: keep
    on: pedestrian
    group_by: crossing
    window: {sliding: 1m}
    when: count() >= 3
    then:
      - command: {target: "k/{crossing}", action: busy}
  - name: change
    on: pedestrian
    group_by: crossing
    window: {sliding: 1m}
    when: count() >= 3
    then:
      - command: {target: "c/{crossing}", action: busy}
  - name: gone
    on: pedestrian
    when: crossing == "x1"
    then:
      - command: {target: "g/{device}", action: on}
)";
  const char* v2 = R"(rules:
  - name: new
    on: pedestrian
    when: crossing == "x1"
    then:
      - command: {target: "n/{device}", action: on}
  - name: change
    on: pedestrian
    group_by: crossing
    window: {sliding: 1m}
    when: count() >= 2
    then:
      - command: {target: "c/{crossing}", action: busy}
  - name: keep
    on: pedestrian
    group_by: crossing
    window: {sliding: 1m}
    when: count() >= 3
    then:
      - command: {target: "k/{crossing}", action: busy}
)";
  FixedOffsetZone tz(3600);
  auto rs1 = MustCompile(v1);
  Engine e(rs1, Opts(&tz));
  Collect sink;
  e.Process(MakeEvent(kT0, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}), kT0, sink);
  e.Process(MakeEvent(kT0 + 10 * kSec, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
            kT0 + 10 * kSec, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{"21:00:00.000 gone p cmd g/p on"});
  CHECK(e.group_count() == 3);
  StateDelta d;
  e.TakeDirty(&d);
  d.clear();

  auto rs2 = MustCompile(v2);
  e.SwapRules(rs2);
  CHECK(e.group_count() == 1);  // keep/x1 only
  CHECK(e.stats(2).evaluations.load() == 2);  // keep's counters survive, at its new index
  e.TakeDirty(&d);
  // The prefixes of the old definitions (fingerprints of v1): their own keys and their packs.
  auto deleted = [&](const std::string& p) {
    return std::count(d.delete_prefixes.begin(), d.delete_prefixes.end(), p);
  };
  for (const char* gone : {"change", "gone"}) {
    CHECK(deleted(RulePrefix(*rs1, gone, '\x02')) == 1);
    CHECK(deleted(RulePrefix(*rs1, gone, '\x03')) == 1);
  }
  CHECK(deleted(RulePrefix(*rs1, "keep", '\x02')) == 0);
  CHECK(deleted(RulePrefix(*rs1, "keep", '\x03')) == 0);

  sink.outs.clear();
  // keep: 3rd event in its minute -> busy (its half-full window survived). change: fresh, 1
  // event: nothing; its 2nd event at :25 -> busy. new: activates on its first event.
  e.Process(MakeEvent(kT0 + 20 * kSec, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
            kT0 + 20 * kSec, sink);
  e.Process(MakeEvent(kT0 + 25 * kSec, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
            kT0 + 25 * kSec, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "21:00:20.000 new p cmd n/p on",
                                   "21:00:20.000 keep x1 cmd k/x1 busy",
                                   "21:00:25.000 change x1 cmd c/x1 busy",
                               });
  // The kept rule's timers survived the swap too (and were re-keyed to its new index): its
  // window falls under 3 at 21:01:10 -> deactivation is silent (no otherwise), but the group stays
  // consistent: a new burst activates again.
  sink.outs.clear();
  e.AdvanceTo(kT0 + 5 * kMin, sink);
  for (int i = 0; i < 3; ++i)
    e.Process(MakeEvent(kT0 + 5 * kMin + i, "pedestrian", {{"device", "p"}, {"crossing", "x1"}}),
              kT0 + 5 * kMin + i, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "21:05:00.001 change x1 cmd c/x1 busy",
                                   "21:05:00.002 keep x1 cmd k/x1 busy",
                               });
  // Keys written after the swap carry each rule's own prefix in the new set (the engine keeps
  // the prefixes made at load time; rules moved: keep was 0, is 2).
  StateDelta after;
  e.TakeAll(&after);
  std::vector<std::string> keys = GroupsPut(after);
  std::sort(keys.begin(), keys.end());
  CHECK(after.puts.size() == 3);
  for (const auto& [k, v] : after.puts) CHECK(IsPackKey(k));
  std::vector<std::string> want{StateKey(*rs2, "change", "x1"), StateKey(*rs2, "keep", "x1"),
                                StateKey(*rs2, "new", "p")};
  std::sort(want.begin(), want.end());
  CHECK(keys == want);
}

TEST_CASE("engine swap: a pending absence timer of an unchanged rule survives the swap",
          "[engine][swap]") {
  const char* v1 = R"(rules:
  - name: silent
    on: hb
    absent_for: 1m
    then:
      - command: {target: "s/{device}", action: silent}
)";
  std::string v2 = std::string(v1) + R"(  - name: other
    on: other
    when: x == 1
)";
  FixedOffsetZone tz(3600);
  Engine e(MustCompile(v1), Opts(&tz));
  Collect sink;
  e.Process(MakeEvent(kT0, "hb", {{"device", "c1"}}), kT0, sink);
  e.SwapRules(MustCompile(v2));
  e.AdvanceTo(kT0 + 2 * kMin, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{"21:01:00.000 silent c1 cmd s/c1 silent"});
}

TEST_CASE("engine sharding: each shard keeps its groups; RouteMask covers every group's shard",
          "[engine][shard]") {
  auto rs = MustCompile(R"(rules:
  - name: by-device
    on: m
    when: v > 1
    then:
      - command: {target: "d/{device}", action: on}
  - name: by-zone
    on: m
    group_by: zone
    when: v > 1
    then:
      - command: {target: "z/{zone}", action: on}
)");
  // Find a device on shard 0 and a zone on shard 1 (and vice versa).
  std::string dev0, dev1, zone0, zone1;
  for (int i = 0; i < 100 && (dev0.empty() || dev1.empty() || zone0.empty() || zone1.empty()); ++i) {
    std::string d = "dev" + std::to_string(i), z = "zone" + std::to_string(i);
    (ShardOfKey(d, 2) == 0 ? dev0 : dev1) = d;
    (ShardOfKey(z, 2) == 0 ? zone0 : zone1) = z;
  }
  REQUIRE(!dev0.empty());
  REQUIRE(!dev1.empty());
  REQUIRE(!zone0.empty());
  REQUIRE(!zone1.empty());

  Event split = MakeEvent(kT0, "m", {{"device", dev0.c_str()}, {"zone", zone1.c_str()}, {"v", 2}});
  Event same = MakeEvent(kT0, "m", {{"device", dev1.c_str()}, {"zone", zone1.c_str()}, {"v", 2}});
  Event nozone = MakeEvent(kT0, "m", {{"device", dev1.c_str()}, {"v", 2}});
  Event other = MakeEvent(kT0, "nomatch", {{"device", dev1.c_str()}});
  CHECK(RouteMask(*rs, split, 2) == 3);
  CHECK(RouteMask(*rs, same, 2) == 2);
  CHECK(RouteMask(*rs, nozone, 2) == 3);  // dev1's shard, and shard 0 counts the missing zone
  CHECK(RouteMask(*rs, other, 2) == 0);
  CHECK(RouteMask(*rs, split, 1) == 1);

  FixedOffsetZone tz(3600);
  Engine s0(rs, Opts(&tz, 0, 2)), s1(rs, Opts(&tz, 1, 2));
  Collect o0, o1;
  for (Engine* e : {&s0, &s1}) {
    Collect& o = e == &s0 ? o0 : o1;
    if (RouteMask(*rs, split, 2) & (e == &s0 ? 1 : 2)) e->Process(split, kT0, o);
    if (RouteMask(*rs, nozone, 2) & (e == &s0 ? 1 : 2)) e->Process(nozone, kT0, o);
  }
  CHECK(BriefAll(o0.outs) == std::vector<std::string>{"21:00:00.000 by-device " + dev0 + " cmd d/" + dev0 + " on"});
  CHECK(BriefAll(o1.outs) == std::vector<std::string>{
                                 "21:00:00.000 by-zone " + zone1 + " cmd z/" + zone1 + " on",
                                 "21:00:00.000 by-device " + dev1 + " cmd d/" + dev1 + " on",
                             });
  CHECK(s0.group_count() == 1);
  CHECK(s1.group_count() == 2);
  // The missing group field is counted once, by shard 0.
  CHECK(s0.stats(1).errors[RuleStats::kMissingGroupField].load() == 1);
  CHECK(s1.stats(1).errors[RuleStats::kMissingGroupField].load() == 0);
  // A shard restores only its own groups.
  StateDelta d;
  s1.TakeAll(&d);
  Engine s0b(rs, Opts(&tz, 0, 2));
  for (const auto& [k, v] : d.puts) CHECK_FALSE(s0b.Restore(k, v));
  CHECK(s0b.group_count() == 0);
  Engine s1b(rs, Opts(&tz, 1, 2));
  for (const auto& [k, v] : d.puts) CHECK(s1b.Restore(k, v));
  CHECK(s1b.group_count() == 2);
}

TEST_CASE("engine timers: same instant fires in rule order, then arming order, before events",
          "[engine][timers]") {
  auto rs = MustCompile(R"(rules:
  - name: z-first
    on: hb
    absent_for: 1m
    then:
      - command: {target: "z/{device}", action: silent}
  - name: a-second
    on: hb
    absent_for: 1m
    then:
      - command: {target: "a/{device}", action: silent}
    otherwise:
      - command: {target: "a/{device}", action: back}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  e.Process(MakeEvent(kT0, "hb", {{"device", "c2"}}), kT0, sink);
  e.Process(MakeEvent(kT0, "hb", {{"device", "c1"}}), kT0, sink);
  CHECK(e.NextTimer() == kT0 + kMin);
  // An event stamped exactly at the deadline: the timers fire first, then the event.
  e.Process(MakeEvent(kT0 + kMin, "hb", {{"device", "c1"}}), kT0 + kMin, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "21:01:00.000 z-first c2 cmd z/c2 silent",
                                   "21:01:00.000 z-first c1 cmd z/c1 silent",
                                   "21:01:00.000 a-second c2 cmd a/c2 silent",
                                   "21:01:00.000 a-second c1 cmd a/c1 silent",
                                   "21:01:00.000 a-second c1 cmd a/c1 back",
                               });
  // Engine time never goes back; a late event is processed at engine time.
  sink.outs.clear();
  e.AdvanceTo(kT0, sink);
  CHECK(e.now() == kT0 + kMin);
}

TEST_CASE("engine stats: evaluations, activations, and run-time errors per rule", "[engine][stats]") {
  auto rs = MustCompile(R"(rules:
  - name: cmp
    on: m
    when: v > 3
    then:
      - command: {target: "t/{device}", action: on, w: "{w}"}
    otherwise:
      - command: {target: "t/{device}", action: off}
  - name: div
    on: m
    where: exists(v)
    when: 10 / v > 1
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  e.Process(MakeEvent(kT0, "m", {{"device", "a"}, {"v", 5}}), kT0, sink);        // on, {w} missing
  e.Process(MakeEvent(kT0 + 1, "m", {{"device", "a"}, {"v", "x"}}), kT0 + 1, sink);  // mismatch: off
  e.Process(MakeEvent(kT0 + 2, "m", {{"device", "a"}}), kT0 + 2, sink);            // missing
  e.Process(MakeEvent(kT0 + 3, "m", {{"v", 9}}), kT0 + 3, sink);                   // no device
  e.Process(MakeEvent(kT0 + 4, "m", {{"device", "b"}, {"v", 0}}), kT0 + 4, sink);  // 10 / 0
  const RuleStats& c = e.stats(0);
  CHECK(c.evaluations.load() == 4);
  CHECK(c.activations.load() == 1);
  CHECK(c.deactivations.load() == 1);
  CHECK(c.errors[RuleStats::kTypeMismatch].load() == 1);
  CHECK(c.errors[RuleStats::kMissingField].load() == 1);
  CHECK(c.errors[RuleStats::kMissingGroupField].load() == 1);
  CHECK(c.errors[RuleStats::kTemplateMissingField].load() == 1);
  CHECK(c.groups.load() == 1);  // b never satisfied `when`: a stateless rule makes no group
  CHECK(c.active_groups.load() == 0);
  const RuleStats& dv = e.stats(1);
  CHECK(dv.evaluations.load() == 3);  // without v: filtered out by `where`; without device: skipped
  CHECK(dv.errors[RuleStats::kDivByZero].load() == 1);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "21:00:00.000 cmp a cmd t/a on w=",
                                   "21:00:00.001 cmp a cmd t/a off",
                               });
  auto view = e.Stats();
  REQUIRE(view->per_rule.size() == 2);
  CHECK(view->per_rule[0]->evaluations.load() == 4);
  CHECK(view->groups.load() == 2);  // cmp/a and div/a, the groups that activated
}

TEST_CASE("engine stats: a where error is counted once, by the shard that owns the group",
          "[engine][stats]") {
  auto rs = MustCompile(R"(rules:
  - name: hot
    on: m
    where: v > 3
    when: true
  - name: by-zone
    on: m
    group_by: zone
    when: true
)");
  FixedOffsetZone tz(3600);
  // The second rule groups by zone: RouteMask sends the event to both shards when the device's
  // and the zone's keys hash apart. Each shard processes it (one of them a copy); only the owner
  // of the device's group evaluates `hot`'s where, whichever got the original.
  std::string zone = "z";
  for (int i = 0; ShardOfKey(zone, 2) == ShardOfKey("a", 2); ++i) zone = "z" + std::to_string(i);
  const int owner = ShardOfKey("a", 2);
  for (bool original_to_owner : {true, false}) {
    INFO("original to the owner: " << original_to_owner);
    Engine s0(rs, Opts(&tz, 0, 2)), s1(rs, Opts(&tz, 1, 2));
    Engine* shard[2] = {&s0, &s1};
    Collect sink;
    Event ev = MakeEvent(kT0, "m", {{"device", "a"}, {"zone", zone.c_str()}, {"v", "x"}});  // v > 3: type mismatch
    REQUIRE(RouteMask(*rs, ev, 2) == 3);
    Event copy = ev;
    copy.is_copy = true;
    shard[owner]->Process(original_to_owner ? ev : copy, kT0, sink);
    shard[1 - owner]->Process(original_to_owner ? copy : ev, kT0, sink);
    CHECK(shard[owner]->stats(0).errors[RuleStats::kTypeMismatch].load() == 1);
    CHECK(shard[1 - owner]->stats(0).errors[RuleStats::kTypeMismatch].load() == 0);
  }
}

TEST_CASE("engine: absence counts only events that pass `where`", "[engine][absence]") {
  auto rs = MustCompile(R"(rules:
  - name: s
    on: hb
    where: ok == true
    absent_for: 1m
    then:
      - command: {target: "s/{device}", action: silent}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  e.Process(MakeEvent(kT0, "hb", {{"device", "c1"}, {"ok", true}}), kT0, sink);
  e.Process(MakeEvent(kT0 + 30 * kSec, "hb", {{"device", "c1"}, {"ok", false}}), kT0 + 30 * kSec, sink);
  e.Process(MakeEvent(kT0 + 30 * kSec, "hb", {{"device", "c2"}, {"ok", false}}), kT0 + 30 * kSec, sink);
  e.AdvanceTo(kT0 + 5 * kMin, sink);
  // c1 at 21:01:00 (the filtered event does not count); c2 never matched: never active.
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{"21:01:00.000 s c1 cmd s/c1 silent"});
}

TEST_CASE("engine: `for` on a sliding window activates at its instant and is cancelled by an "
          "eviction", "[engine][for]") {
  auto rs = MustCompile(R"(rules:
  - name: w
    on: m
    window: {sliding: 20s}
    let:
      n: count()
    when: n >= 2
    for: 15s
    then:
      - command: {target: "w/{device}", action: on, n: "{n}"}
    otherwise:
      - command: {target: "w/{device}", action: off, n: "{n}"}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  auto ev = [&](const char* dev, int64_t s) {
    e.Process(MakeEvent(kT0 + s * kSec, "m", {{"device", dev}}), kT0 + s * kSec, sink);
  };
  // a: 2 events by :05 -> holds from :05 -> on at :20 (no event then); :02 leaves at :22 -> off.
  // b: :00 and :10 -> holds from :10; :00 leaves at :20 -> cancelled; :21 -> holds again from
  // :21, :10 leaves at :30 -> cancelled again. Never on.
  ev("b", 0);
  ev("a", 2);
  ev("a", 5);
  ev("b", 10);
  ev("b", 21);
  e.AdvanceTo(kT0 + 2 * kMin, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "21:00:20.000 w a cmd w/a on n=2",
                                   "21:00:22.000 w a cmd w/a off n=1",
                               });
}

TEST_CASE("engine: empty tumbling periods of a clock-reading rule are each evaluated at their "
          "own close", "[engine][tumbling]") {
  auto rs = MustCompile(R"(rules:
  - name: night
    on: m
    window: {tumbling: 1h}
    when: count() == 0 and hour() == 3
    then:
      - command: {target: "n/{device}", action: on}
    otherwise:
      - command: {target: "n/{device}", action: off}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  // 23:30Z = 00:30 in Paris. Closes at 00:00Z (n 1), 01:00Z, 02:00Z (= 03:00 local: on),
  // 03:00Z (04:00 local: off), and so on; all in one AdvanceTo.
  int64_t t = kT0 + 2 * 60 * kMin + 30 * kMin;
  e.Process(MakeEvent(t, "m", {{"device", "d"}}), t, sink);
  e.AdvanceTo(t + 12 * 60 * kMin, sink);
  CHECK(BriefAll(sink.outs) == std::vector<std::string>{
                                   "02:00:00.000 night d cmd n/d on",
                                   "03:00:00.000 night d cmd n/d off",
                               });
}

TEST_CASE("engine state: group values of every shape round-trip and render alike (single string "
          "group_by, number, boolean, several fields)", "[engine][state][groups]") {
  // A group does not store its one group_by value when it is the string key itself; every other
  // shape is stored. Both must write the same state bytes, restore to the same group, and render
  // {field} and {key} alike, including from an absence timer, whose outputs see only the group.
  auto rs = MustCompile(R"(rules:
  - name: by-device
    on: m
    when: v > 1
    then:
      - alert: {severity: warning, summary: "D {device} v={v} k={key}", labels: {g: "{device}"}}
    otherwise:
      - command: {target: "d/{device}", action: calm, k: "{key}"}
  - name: by-line
    on: m
    group_by: line
    when: v > 1
    then:
      - alert: {severity: warning, summary: "L {line} k={key}"}
    otherwise:
      - command: {target: "l/{line}", action: calm}
  - name: by-pair
    on: m
    group_by: [zone, device]
    when: v > 1
    then:
      - alert: {severity: warning, summary: "P {zone} {device} k={key}"}
    otherwise:
      - command: {target: "p/{zone}/{device}", action: calm}
  - name: quiet-dev
    on: m
    absent_for: 1m
    then:
      - command: {target: "q/{device}", action: silent, k: "{key}"}
  - name: quiet-line
    on: m
    group_by: line
    absent_for: 1m
    then:
      - command: {target: "q/{line}", action: silent, k: "{key}"}
  - name: quiet-flag
    on: m
    group_by: flag
    absent_for: 1m
    then:
      - command: {target: "q/{flag}", action: silent, k: "{key}"}
  - name: quiet-pair
    on: m
    group_by: [zone, line]
    absent_for: 1m
    then:
      - command: {target: "q/{zone}/{line}", action: silent, k: "{key}"}
)");
  FixedOffsetZone tz(3600);
  // device "7" (a string) and line 7 (a number) have the same key "7": only the string is the key.
  auto first = [] {
    return MakeEvent(kT0, "m", {{"device", "7"}, {"line", 7}, {"flag", true}, {"zone", "z1"}, {"v", 2}});
  };
  Engine e1(rs, Opts(&tz));
  Collect o1;
  e1.Process(first(), kT0, o1);
  CHECK(BriefAll(o1.outs) == std::vector<std::string>{
                                 "21:00:00.000 by-device 7 alert firing warning D 7 v=2 k=7",
                                 "21:00:00.000 by-line 7 alert firing warning L 7 k=7",
                                 "21:00:00.000 by-pair z1/7 alert firing warning P z1 7 k=z1/7",
                             });
  StateDelta d;
  e1.TakeAll(&d);
  Store store;
  store.Apply(d);
  REQUIRE(store.kv.size() == 7);  // a pack per rule
  const KV groups = Groups(store.kv);
  REQUIRE(groups.size() == 7);

  // The durable form, byte for byte (format 2): flags, last_seen, the other instants that are
  // set as differences from it, the group values with their types (or "the key"), the firing
  // alerts, no window, no last event.
  auto stateless = [&](const std::vector<Value>& vals, const std::string& summary,
                       const std::vector<std::pair<std::string, std::string>>& labels) {
    std::string b;
    ByteWriter w(&b);
    w.U8(2);
    w.U8(1);       // active
    w.I64(0);      // last_seen
    w.U8(0b10);    // set: last_activity only
    w.I64(kT0);    // last_activity - last_seen
    if (vals.empty()) {
      w.U8(1);     // the one group value is the key
    } else {
      w.U8(0);
      w.Var(vals.size());
      for (const Value& v : vals) w.Val(v);
    }
    w.Var(1);
    w.Str("warning");
    w.Str(summary);
    w.Var(labels.size());
    for (const auto& [k, v] : labels) {
      w.Str(k);
      w.Str(v);
    }
    w.U8(0);
    w.U8(0);
    return b;
  };
  CHECK(groups.at(StateKey(*rs, "by-device", "7")) ==
        stateless({}, "D 7 v=2 k=7", {{"g", "7"}}));
  CHECK(groups.at(StateKey(*rs, "by-line", "7")) == stateless({Value::Number(7)}, "L 7 k=7", {}));
  CHECK(groups.at(StateKey(*rs, "by-pair", "z1/7")) ==
        stateless({Value::String("z1"), Value::String("7")}, "P z1 7 k=z1/7", {}));
  {
    std::string b;
    ByteWriter w(&b);
    w.U8(2);
    w.U8(0);
    w.I64(kT0);       // last_seen
    w.U8(0b10010);    // set: last_activity, absence_due
    w.I64(0);         // last_activity - last_seen
    w.I64(kMin);      // absence_due - last_seen
    w.U8(0);
    w.Var(1);
    w.Val(Value::Bool(true));
    w.Var(0);
    w.U8(0);
    w.U8(0);
    CHECK(groups.at(StateKey(*rs, "quiet-flag", "true")) == b);
    // Its pack (format 4): the format, the checkpoint number (the engine's first), the number
    // of groups, then each group's key and value.
    std::string pack;
    ByteWriter pw(&pack);
    pw.U8(4);
    pw.Var(1);
    pw.Var(1);
    pw.Str("true");
    pw.Str(b);
    CHECK(store.kv[PackKey(*rs, "quiet-flag", 1, 0, 0)] == pack);
  }

  // Restored, the groups write the same bytes again.
  Engine e2(rs, Opts(&tz));
  for (const auto& [k, v] : store.kv) REQUIRE(e2.Restore(k, v));
  CHECK(e2.group_count() == 7);
  Collect none;
  e2.FinishRestore(kT0 + kSec, none);
  CHECK(none.outs.empty());
  StateDelta d2;
  e2.TakeAll(&d2);
  Store again;
  again.Apply(d2);
  CHECK(Groups(again.kv) == Groups(store.kv));
  for (const auto& [k, v] : again.kv) CHECK(PackNumber(v) == 2);  // numbered on from the store

  // And both engines go on alike: resolved alerts and commands from the stored values, and the
  // absence timers, whose templates read only the group.
  auto rest = [&](Engine& e) {
    Collect o;
    e.Process(MakeEvent(kT0 + 10 * kSec, "m",
                        {{"device", "7"}, {"line", 7}, {"flag", true}, {"zone", "z1"}, {"v", 0}}),
              kT0 + 10 * kSec, o);
    e.AdvanceTo(kT0 + 5 * kMin, o);
    return BriefAll(o.outs);
  };
  const std::vector<std::string> want = {
      "21:00:10.000 by-device 7 alert resolved warning D 7 v=2 k=7",
      "21:00:10.000 by-device 7 cmd d/7 calm k=7",
      "21:00:10.000 by-line 7 alert resolved warning L 7 k=7",
      "21:00:10.000 by-line 7 cmd l/7 calm",
      "21:00:10.000 by-pair z1/7 alert resolved warning P z1 7 k=z1/7",
      "21:00:10.000 by-pair z1/7 cmd p/z1/7 calm",
      "21:01:10.000 quiet-dev 7 cmd q/7 silent k=7",
      "21:01:10.000 quiet-line 7 cmd q/7 silent k=7",
      "21:01:10.000 quiet-flag true cmd q/true silent k=true",
      "21:01:10.000 quiet-pair z1/7 cmd q/z1/7 silent k=z1/7",
  };
  CHECK(rest(e1) == want);
  CHECK(rest(e2) == want);
}

TEST_CASE("engine: a stateless rule without `for` makes its group when `when` first holds",
          "[engine][state]") {
  auto rs = MustCompile(R"(rules:
  - name: hot
    on: temp
    group_by: [zone, line]
    when: t > 30
    then:
      - command: {target: "fans/{zone}/{line}", action: "on", key: "{key}"}
    otherwise:
      - command: {target: "fans/{zone}/{line}", action: "off"}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  auto temp = [](int64_t ts, double t) {
    return MakeEvent(ts, "temp", {{"zone", "z1"}, {"line", 7}, {"t", t}});
  };
  e.Process(temp(kT0, 20), kT0, sink);
  e.Process(temp(kT0 + 1, 25), kT0 + 1, sink);
  CHECK(e.group_count() == 0);  // never active: nothing held
  CHECK(e.stats(0).evaluations.load() == 2);
  StateDelta d;
  e.TakeAll(&d);
  CHECK(d.puts.empty());
  e.Process(temp(kT0 + 2, 35), kT0 + 2, sink);  // activates: the group is made now
  CHECK(e.group_count() == 1);
  CHECK(e.stats(0).activations.load() == 1);
  CHECK(e.stats(0).evaluations.load() == 3);
  e.Process(temp(kT0 + 3, 36), kT0 + 3, sink);  // still active: no second `then`
  CHECK(BriefAll(sink.outs) ==
        std::vector<std::string>{"21:00:00.002 hot z1/7 cmd fans/z1/7 on key=z1/7"});

  // A restart keeps the active group: the next cool reading sends `otherwise`, once.
  Store store;
  e.TakeAll(&d);
  store.Apply(d);
  CHECK(Groups(store.kv).count(StateKey(*rs, "hot", "z1/7")) == 1);
  Engine e2(rs, Opts(&tz));
  Collect after;
  for (const auto& [k, v] : store.kv) CHECK(e2.Restore(k, v));
  e2.FinishRestore(kT0 + 4, after);
  e2.Process(temp(kT0 + 5, 20), kT0 + 5, after);
  e2.Process(temp(kT0 + 6, 21), kT0 + 6, after);
  CHECK(BriefAll(after.outs) == std::vector<std::string>{"21:00:00.005 hot z1/7 cmd fans/z1/7 off"});
  CHECK(e2.group_count() == 1);  // inactive again, kept until idle eviction
  e2.Process(temp(kT0 + 7, 40), kT0 + 7, after);  // and it can fire again
  CHECK(e2.stats(0).activations.load() == 1);
}

TEST_CASE("engine: a stateless rule with `for` makes its group when `when` first holds, and its "
          "timer fires with the most recent event while pending",
          "[engine][state]") {
  auto rs = MustCompile(R"(rules:
  - name: hot
    on: temp
    when: t > 30
    for: 1m
    then:
      - alert: {severity: warning, summary: "Hot {device} {t} {n}"}
)");
  FixedOffsetZone tz(3600);
  Engine e(rs, Opts(&tz));
  Collect sink;
  auto temp = [](int64_t ts, double t, int n) {
    return MakeEvent(ts, "temp", {{"device", "s1"}, {"t", t}, {"n", n}});
  };
  e.Process(temp(kT0, 20, 1), kT0, sink);
  e.Process(temp(kT0 + kSec, 25, 2), kT0 + kSec, sink);
  CHECK(e.group_count() == 0);  // `when` never held: nothing held, nothing written
  CHECK(e.stats(0).evaluations.load() == 2);
  StateDelta d;
  e.TakeAll(&d);
  CHECK(d.puts.empty());

  e.Process(temp(kT0 + 2 * kSec, 35, 3), kT0 + 2 * kSec, sink);  // pending from here
  CHECK(e.group_count() == 1);
  CHECK(e.NextTimer() == kT0 + 62 * kSec);
  e.Process(temp(kT0 + 10 * kSec, 36, 4), kT0 + 10 * kSec, sink);  // still pending
  // A restart while pending keeps the timer and the most recent event.
  Store store;
  e.TakeAll(&d);
  store.Apply(d);
  Engine e2(rs, Opts(&tz));
  Collect after;
  for (const auto& [k, v] : store.kv) CHECK(e2.Restore(k, v));
  e2.FinishRestore(kT0 + 20 * kSec, after);
  const std::vector<std::string> fired{"21:01:02.000 hot s1 alert firing warning Hot s1 36 4"};
  e.AdvanceTo(kT0 + 62 * kSec, sink);
  CHECK(BriefAll(sink.outs) == fired);
  e2.AdvanceTo(kT0 + 62 * kSec, after);
  CHECK(BriefAll(after.outs) == fired);

  // `when` stops holding before `for`: cancelled, nothing fires; and the event that breaks it
  // is not the one a later timer reports.
  e.Process(temp(kT0 + 70 * kSec, 20, 5), kT0 + 70 * kSec, sink);  // deactivates (no otherwise)
  e.Process(temp(kT0 + 80 * kSec, 31, 6), kT0 + 80 * kSec, sink);  // pending again
  e.Process(temp(kT0 + 90 * kSec, 10, 7), kT0 + 90 * kSec, sink);  // cancelled
  e.AdvanceTo(kT0 + 200 * kSec, sink);
  CHECK(sink.outs.size() == 2);  // the firing above and its resolve at 70 s
  e.Process(temp(kT0 + 210 * kSec, 32, 8), kT0 + 210 * kSec, sink);
  e.Process(temp(kT0 + 220 * kSec, 33, 9), kT0 + 220 * kSec, sink);
  e.AdvanceTo(kT0 + 270 * kSec, sink);
  REQUIRE(sink.outs.size() == 3);
  CHECK(Brief(sink.outs.back()) == "21:04:30.000 hot s1 alert firing warning Hot s1 33 9");
}

// A sink that keeps refilling one output (the default OutputSink::NewOutput; Emit does not move
// from it), as the daemon's shard sink refills the outputs the dispatcher gives back, and keeps
// a rendering of each. Compared with a sink that takes every output away (a fresh one each time).
struct Refill : OutputSink {
  std::vector<std::string> rendered;
  void Emit(Output&& o) override { rendered.push_back(Render(o)); }
};

TEST_CASE("engine outputs: a refilled output carries nothing over from the one before",
          "[engine][outputs]") {
  // Commands with and without parameters, alerts with different label counts that fire and
  // resolve, long and short texts, interleaved: every shape follows every other.
  auto rs = MustCompile(R"(rules:
  - name: fast
    on: traffic
    when: speed > 40
    then:
      - command: {target: "lights/junction/{junction}/approach/{device}", action: extend-green-phase, seconds: 10, lane: "{lane}", note: "a parameter long enough for the heap {device}"}
      - alert: {severity: warning, summary: "device {device} at junction {junction} reports {speed} km/h", labels: {junction: "{junction}", kind: traffic, extra: "a label long enough for the heap"}}
    otherwise:
      - command: {target: "l/{device}", action: restore}
  - name: slow
    on: traffic
    when: speed < 33
    then:
      - alert: {severity: info, summary: "slow", labels: {d: "{device}"}}
      - command: {target: "x", action: y}
)");
  std::mt19937 rng(7);
  std::vector<Event> events;
  for (int i = 0; i < 400; ++i) {
    const std::string d = "device-" + std::to_string(rng() % 7);
    events.push_back(MakeEvent(1000 + i, "traffic",
                               {{"device", d.c_str()},
                                {"junction", (rng() % 2) ? "j-1" : "junction-with-a-long-name"},
                                {"lane", (rng() % 2) ? "car" : "bus"},
                                {"speed", static_cast<int>(25 + rng() % 25)}}));
  }
  EngineOptions o;
  FixedOffsetZone tz(0);
  o.tz = &tz;
  Engine fresh(rs, o), refilled(rs, o);
  Collect taken;
  Refill kept;
  for (const Event& ev : events) {
    fresh.Process(ev, ev.ts_ms, taken);
    refilled.Process(ev, ev.ts_ms, kept);
  }
  std::vector<std::string> want;
  for (const Output& out : taken.outs) want.push_back(Render(out));
  REQUIRE(want.size() > 100);  // both rules changed state many times, in every order
  CHECK(kept.rendered == want);
}

TEST_CASE("PutList: keys and values back to back, read as views, written in place or copied",
          "[engine][state]") {
  PutList l;
  CHECK(l.empty());
  l.push_back({"k1", "v1"});
  l.push_back({"", ""});  // empty key and value are entries too
  std::string* buf = l.buffer();
  buf->append("key-three");
  l.EndKey();
  buf->append(std::string(300, 'x'));  // the buffer grows: earlier views are taken afresh
  l.EndValue();
  REQUIRE(l.size() == 3);
  CHECK((l[0] == PutList::Entry{"k1", "v1"}));
  CHECK((l[1] == PutList::Entry{"", ""}));
  CHECK(l[2].first == "key-three");
  CHECK(l[2].second == std::string(300, 'x'));
  CHECK(l.back().first == "key-three");
  CHECK(l.byte_size() == 4 + 0 + 9 + 300);
  std::vector<std::string> seen;
  for (const auto& [k, v] : l) seen.push_back(std::string(k) + "=" + std::string(v.substr(0, 2)));
  CHECK(seen == std::vector<std::string>{"k1=v1", "=", "key-three=xx"});
  l = {{"a", "1"}, {"b", "2"}};
  REQUIRE(l.size() == 2);
  CHECK((l[1] == PutList::Entry{"b", "2"}));
  l.clear();
  CHECK(l.empty());
  CHECK(l.begin() == l.end());
}

namespace {

// A stream over kStateRules with many keys (so that each event has groups to look up) in the
// order a shard would get it, cut into batches of `batch`.
std::vector<Event> LookaheadStream(int n) {
  std::vector<Event> evs;
  std::mt19937 rng(7);
  for (int i = 0; i < n; ++i) {
    const int64_t ts = kT0 + i * 250;
    const std::string dev = "d" + std::to_string(rng() % 40);
    const std::string crossing = "x" + std::to_string(rng() % 12);
    switch (rng() % 4) {
      case 0: evs.push_back(MakeEvent(ts, "pedestrian", {{"device", dev.c_str()}, {"crossing", crossing.c_str()}})); break;
      case 1: evs.push_back(MakeEvent(ts, "temp", {{"device", dev.c_str()}, {"t", static_cast<int>(25 + rng() % 10)}})); break;
      case 2: evs.push_back(MakeEvent(ts, "hb", {{"device", dev.c_str()}})); break;
      default:
        evs.push_back(MakeEvent(ts, "status", {{"device", dev.c_str()}, {"status", rng() % 3 ? "ok" : "fault"}, {"code", 3}}));
    }
  }
  return evs;
}

// Everything the engine stores (a full checkpoint), as key -> value.
KV Everything(Engine& e) {
  Store s;
  StateDelta d;
  e.TakeAll(&d);
  s.Apply(d);
  return s.kv;
}

}  // namespace

// kStateRules and a count_distinct rule, whose tables the lookahead hints (PrefetchDistinct):
// one argument always a type error (string + number), counted alike with hints or without.
const std::string kLookaheadRules = std::string(kStateRules) + R"(  - name: crowd
    on: pedestrian
    group_by: crossing
    window: {sliding: 30s}
    let:
      people: count_distinct(device)
      odd: count_distinct(device + 1)
    when: people >= 6
    then:
      - command: {target: "x/{crossing}", action: crowd, n: "{people}"}
)";

TEST_CASE("engine lookahead: Prepare changes nothing of the outputs or the state, in order or not",
          "[engine][lookahead]") {
  auto rs = MustCompile(kLookaheadRules);
  FixedOffsetZone tz(3600);
  const std::vector<Event> evs = LookaheadStream(3000);
  for (int count : {1, 2}) {
    for (int shard = 0; shard < count; ++shard) {
      CAPTURE(count, shard);
      EngineOptions plain_opts = Opts(&tz, shard, count), ahead_opts = Opts(&tz, shard, count);
      plain_opts.lookahead = EngineOptions::Lookahead::kOff;
      ahead_opts.lookahead = EngineOptions::Lookahead::kOn;
      Engine ahead(rs, ahead_opts);
      Collect got;
      // Batches of 37 as a shard runs them (rules/engine.h: Prepare), except that every
      // fifth batch is processed against its hints: back to front after preparing it front to
      // back (the plans must be forgotten, not used for another event).
      constexpr size_t kBatch = 37;
      constexpr size_t kAhead = Engine::kLookahead;
      for (size_t b0 = 0, nb = 0; b0 < evs.size(); b0 += kBatch, ++nb) {
        const size_t n = std::min(kBatch, evs.size() - b0);
        for (size_t a = 0; a < std::min(kAhead, n); ++a) ahead.Prepare(evs[b0 + a]);
        if (nb % 5 == 4) {
          // The first event out of order, then the rest in order without further hints.
          ahead.Process(evs[b0 + n - 1], evs[b0 + n - 1].ts_ms, got);
          for (size_t i = 0; i + 1 < n; ++i) ahead.Process(evs[b0 + i], evs[b0 + i].ts_ms, got);
        } else {
          for (size_t i = 0; i < n; ++i) {
            if (i + kAhead < n) ahead.Prepare(evs[b0 + i + kAhead]);
            ahead.Process(evs[b0 + i], evs[b0 + i].ts_ms, got);
          }
        }
        ahead.DropPrepared();
      }
      // The same events in the same order, without hints.
      Engine plain2(rs, plain_opts);
      Collect want2;
      for (size_t b0 = 0, nb = 0; b0 < evs.size(); b0 += kBatch, ++nb) {
        const size_t n = std::min(kBatch, evs.size() - b0);
        if (nb % 5 == 4) {
          plain2.Process(evs[b0 + n - 1], evs[b0 + n - 1].ts_ms, want2);
          for (size_t i = 0; i + 1 < n; ++i) plain2.Process(evs[b0 + i], evs[b0 + i].ts_ms, want2);
        } else {
          for (size_t i = 0; i < n; ++i) plain2.Process(evs[b0 + i], evs[b0 + i].ts_ms, want2);
        }
      }
      if (count == 1) REQUIRE(want2.outs.size() > 100);  // the rules fired: there is something to compare
      CHECK(BriefAll(got.outs) == BriefAll(want2.outs));
      CHECK(Everything(ahead) == Everything(plain2));
      CHECK(ahead.group_count() == plain2.group_count());
      for (size_t r = 0; r < rs->rules.size(); ++r) {
        CAPTURE(r);
        CHECK(ahead.stats(r).evaluations.load() == plain2.stats(r).evaluations.load());
        for (int e = 0; e < RuleStats::kErrorCount_; ++e)
          CHECK(ahead.stats(r).errors[e].load() == plain2.stats(r).errors[e].load());
      }
      if (count == 1) {
        CHECK(ahead.stats(rs->rules.size() - 1).errors[RuleStats::kTypeMismatch].load() > 0);
        CHECK(std::count_if(got.outs.begin(), got.outs.end(),
                            [](const Output& o) { return o.rule == "crowd"; }) > 0);
      }
    }
  }
}
