// Durable state in packs (format 3, rules/README.md "Durable state"): groups of one rule and one
// shard share a key, up to 32 of them; a group whose activation changed is also written alone
// (format 2) and that copy wins until its pack is written again; a state written in format 2
// or by another number of shards comes back whole and is packed again.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "rules/engine.h"
#include "tests/rules/state_support.h"
#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

EngineOptions Opts(const TimeZone* tz, int shard = 0, int count = 1, int64_t evict_ms = 0) {
  EngineOptions o;
  o.tz = tz;
  o.shard_index = shard;
  o.shard_count = count;
  o.idle_evict_ms = evict_ms;
  return o;
}

const char* kRules = R"(rules:
  - name: seen
    on: reading
    window: {sliding: 1m}
    let:
      n: count()
    when: n >= 3
    then:
      - command: {target: "x/{device}", action: busy}
  - name: fault
    on: status
    when: status == "fault"
    then:
      - alert: {severity: critical, summary: "F {device}"}
)";

std::string Dev(int i) { return "d" + std::to_string(i); }

Event Reading(int64_t t, const std::string& dev) { return MakeEvent(t, "reading", {{"device", dev.c_str()}}); }
Event Status(int64_t t, const std::string& dev, const char* status) {
  return MakeEvent(t, "status", {{"device", dev.c_str()}, {"status", status}});
}

// The groups of a pack, by group key.
std::vector<std::string> Members(const KV& store, const std::string& pack_key) {
  std::vector<std::string> out;
  auto it = store.find(pack_key);
  if (it == store.end()) return out;
  CHECK(ForEachPacked(it->first, it->second, [&](const std::string& own, std::string_view) {
    out.push_back(own.substr(11));
  }));
  return out;
}

}  // namespace

TEST_CASE("state packs: groups fill packs of 32 in order; a pack is written whole when one of "
          "its groups changes", "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz));
  Collect sink;
  for (int i = 0; i < 70; ++i) e.Process(Reading(kT0 + i, Dev(i)), kT0 + i, sink);
  StateDelta d;
  e.TakeDirty(&d);
  KV store;
  Apply(d, &store);
  REQUIRE(store.size() == 3);
  CHECK(Members(store, PackKey(*rs, "seen", 1, 0, 0)).size() == 32);
  CHECK(Members(store, PackKey(*rs, "seen", 1, 0, 1)).size() == 32);
  const std::vector<std::string> last = Members(store, PackKey(*rs, "seen", 1, 0, 2));
  CHECK(last == std::vector<std::string>{"d64", "d65", "d66", "d67", "d68", "d69"});
  CHECK(Groups(store).size() == 70);

  // d40 (second pack) changes: only its pack is written, with all 32 of its groups.
  e.Process(Reading(kT0 + 100, "d40"), kT0 + 100, sink);
  d.clear();
  e.TakeDirty(&d);
  REQUIRE(d.puts.size() == 1);
  CHECK(d.puts[0].first == PackKey(*rs, "seen", 1, 0, 1));
  CHECK(GroupsPut(d).size() == 32);
  // A new group joins the last pack with room.
  e.Process(Reading(kT0 + 200, "new"), kT0 + 200, sink);
  d.clear();
  e.TakeDirty(&d);
  REQUIRE(d.puts.size() == 1);
  CHECK(d.puts[0].first == PackKey(*rs, "seen", 1, 0, 2));
  Apply(d, &store);
  CHECK(Members(store, PackKey(*rs, "seen", 1, 0, 2)).size() == 7);
}

TEST_CASE("state packs: an evicted group written alone is deleted in the same delta as its "
          "pack's rewrite", "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz, 0, 1, /*evict_ms=*/60000));
  Collect sink;
  KV store;
  StateDelta d;
  e.Process(Status(kT0, "a", "ok"), kT0, sink);  // inactive stateless groups are not kept
  e.Process(Status(kT0, "a", "fault"), kT0, sink);
  e.Process(Status(kT0, "b", "fault"), kT0, sink);
  e.TakeDirty(&d);  // one pack: a, b
  Apply(d, &store);
  REQUIRE(Members(store, PackKey(*rs, "fault", 1, 0, 0)).size() == 2);
  // a clears: written alone by the activation checkpoint.
  e.Process(Status(kT0 + 1000, "a", "ok"), kT0 + 1000, sink);
  d.clear();
  e.TakeChanged(&d);
  REQUIRE(d.puts.size() == 1);
  CHECK(d.puts[0].first == StateKey(*rs, "fault", "a"));
  Apply(d, &store);
  // Idle for a minute: a goes, from memory and from the store. Its own key and its old copy in
  // the pack go together: a crash cannot leave the older copy alone.
  e.AdvanceTo(kT0 + 62000, sink);
  REQUIRE(e.group_count() == 1);
  d.clear();
  e.TakeChanged(&d);
  CHECK(d.deletes == std::vector<std::string>{StateKey(*rs, "fault", "a")});
  REQUIRE(d.puts.size() == 1);
  CHECK(d.puts[0].first == PackKey(*rs, "fault", 1, 0, 0));
  Apply(d, &store);
  CHECK(Members(store, PackKey(*rs, "fault", 1, 0, 0)) == std::vector<std::string>{"b"});
  CHECK(store.size() == 1);
  // Restored: b only, still active.
  Engine e2(rs, Opts(&tz));
  for (const auto& [k, v] : store) CHECK(e2.Restore(k, v));
  Collect none;
  e2.FinishRestore(kT0 + 62000, none);
  CHECK(e2.group_count() == 1);
  CHECK(e2.stats(1).active_groups.load() == 1);
}

TEST_CASE("state packs: a restore takes a group's own key over its copy in a pack, in either "
          "order", "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz));
  Collect sink;
  KV store;
  StateDelta d;
  for (const char* dev : {"a", "b", "c"}) e.Process(Status(kT0, dev, "fault"), kT0, sink);
  e.TakeDirty(&d);
  Apply(d, &store);
  // b clears after the pack was written: its own key holds the newer state.
  e.Process(Status(kT0 + 1000, "b", "ok"), kT0 + 1000, sink);
  d.clear();
  e.TakeChanged(&d);
  Apply(d, &store);
  REQUIRE(store.size() == 2);

  std::vector<std::pair<std::string, std::string>> entries(store.begin(), store.end());
  for (bool reversed : {false, true}) {
    INFO((reversed ? "pack first" : "own key first (key order)"));
    if (reversed) std::reverse(entries.begin(), entries.end());
    Engine e2(rs, Opts(&tz));
    for (const auto& [k, v] : entries) CHECK(e2.Restore(k, v));
    Collect out;
    e2.FinishRestore(kT0 + 2000, out);
    CHECK(e2.group_count() == 3);
    CHECK(e2.stats(1).active_groups.load() == 2);  // a and c; b resolved
    // b faults again: it fires (it was resolved); a does not (still active).
    e2.Process(Status(kT0 + 3000, "b", "fault"), kT0 + 3000, out);
    e2.Process(Status(kT0 + 3000, "a", "fault"), kT0 + 3000, out);
    CHECK(BriefAll(out.outs) ==
          std::vector<std::string>{"21:00:03.000 fault b alert firing critical F b"});
    // The next round stores each group once, and b's own key is gone.
    KV again = store;
    StateDelta d2;
    e2.TakeDirty(&d2);
    Apply(d2, &again);
    CHECK(again.count(StateKey(*rs, "fault", "b")) == 0);
    CHECK(Groups(again).size() == 3);
  }
}

TEST_CASE("state packs: a format 2 store comes back whole and the next round packs it, deleting "
          "the old keys in the same delta", "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz));
  Collect sink;
  for (int i = 0; i < 40; ++i) {
    e.Process(Reading(kT0 + i, Dev(i)), kT0 + i, sink);
    e.Process(Reading(kT0 + 100 + i, Dev(i)), kT0 + 100 + i, sink);
  }
  e.Process(Status(kT0 + 200, "d1", "fault"), kT0 + 200, sink);
  StateDelta d;
  e.TakeAll(&d);
  KV packed;
  Apply(d, &packed);
  // What a vigie of format 2 wrote for the same state: each group under its own key, with the
  // same value bytes (format 2 values did not change).
  const KV format2 = Groups(packed);
  REQUIRE(format2.size() == 41);

  Engine up(rs, Opts(&tz));
  for (const auto& [k, v] : format2) CHECK(up.Restore(k, v));
  Collect none;
  up.FinishRestore(kT0 + 300, none);
  CHECK(none.outs.empty());
  CHECK(up.group_count() == 41);
  StateDelta first;
  up.TakeDirty(&first);
  CHECK(first.deletes.size() == 41);  // every own key, with the packs that replace them
  for (const auto& [k, v] : first.puts) CHECK(IsPackKey(k));
  KV store = format2;
  Apply(first, &store);
  CHECK(Groups(store) == format2);  // the same groups, byte for byte
  for (const auto& [k, v] : store) CHECK(IsPackKey(k));

  // And they behave alike: the third reading of each device fires.
  Collect a, b;
  for (Engine* x : {&e, &up}) {
    Collect& out = x == &e ? a : b;
    for (int i = 0; i < 40; i += 7) x->Process(Reading(kT0 + 400 + i, Dev(i)), kT0 + 400 + i, out);
    x->Process(Status(kT0 + 500, "d1", "ok"), kT0 + 500, out);
  }
  CHECK(a.outs.size() == 7);
  CHECK(BriefAll(a.outs) == BriefAll(b.outs));
}

TEST_CASE("state packs: another shard count's packs give each shard its groups; a full write and "
          "their deletion leave the new layout only", "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  // Written by 2 shards.
  KV store;
  size_t total = 0;
  for (int s = 0; s < 2; ++s) {
    Engine e(rs, Opts(&tz, s, 2));
    Collect sink;
    for (int i = 0; i < 100; ++i) {
      if (ShardOfKey(Dev(i), 2) != s) continue;
      e.Process(Reading(kT0 + i, Dev(i)), kT0 + i, sink);
      if (i % 10 == 0) e.Process(Status(kT0 + i, Dev(i), "fault"), kT0 + i, sink);
    }
    StateDelta d;
    e.TakeAll(&d);
    Apply(d, &store);
    total += e.group_count();
  }
  REQUIRE(total == 110);
  const KV groups_before = Groups(store);
  REQUIRE(groups_before.size() == 110);

  // Restored by 3 shards: each takes the groups that hash to it, from every pack.
  std::vector<std::unique_ptr<Engine>> shards;
  for (int s = 0; s < 3; ++s) shards.push_back(std::make_unique<Engine>(rs, Opts(&tz, s, 3)));
  for (const auto& [k, v] : store) {
    bool taken = false;
    for (auto& e : shards) taken |= e->Restore(k, v);
    CHECK(taken);
  }
  size_t restored = 0;
  std::vector<std::string> foreign;
  Collect none;
  for (size_t s = 0; s < shards.size(); ++s) {
    shards[s]->FinishRestore(kT0 + 1000, none);
    restored += shards[s]->group_count();
    std::vector<std::string> keys;
    shards[s]->TakeForeignKeys(&keys);
    if (s == 0) CHECK(keys.size() == store.size());  // shard 0 names every old pack ...
    else CHECK(keys.empty());                       // ... and only shard 0
    foreign.insert(foreign.end(), keys.begin(), keys.end());
  }
  CHECK(restored == 110);
  CHECK(none.outs.empty());
  // What Pipeline::Restore writes: every shard's TakeAll, then the old packs' deletion.
  std::vector<StateDelta> batch(4);
  for (size_t s = 0; s < 3; ++s) shards[s]->TakeAll(&batch[s]);
  batch[3].deletes = foreign;
  for (const auto& d : batch) Apply(d, &store);
  for (const auto& [k, v] : store) {
    REQUIRE(IsPackKey(k));
    CHECK(static_cast<uint8_t>(k[12]) == 3);  // shard count 3
  }
  CHECK(Groups(store) == groups_before);  // every group, its bytes unchanged
  // And a restore by 3 shards again finds nothing foreign.
  for (int s = 0; s < 3; ++s) {
    Engine e(rs, Opts(&tz, s, 3));
    for (const auto& [k, v] : store) e.Restore(k, v);
    e.FinishRestore(kT0 + 1000, none);
    std::vector<std::string> keys;
    e.TakeForeignKeys(&keys);
    CHECK(keys.empty());
  }
}

TEST_CASE("state packs: rounds that copy unchanged groups from the last write store what a "
          "fresh full write stores", "[engine][state][packs]") {
  // Windowed and absence groups are written whenever they change, so a store kept by rounds
  // (each pack rewritten whole, its unchanged groups copied from its previous write) must equal,
  // group for group, a full write serialized afresh; idle eviction reorders packs on the way.
  auto rs = MustCompile(R"(rules:
  - name: seen
    on: reading
    window: {sliding: 10s}
    let:
      n: count()
    when: n >= 3
    then:
      - command: {target: "x/{device}", action: busy}
  - name: quiet
    on: reading
    absent_for: 30s
    then:
      - alert: {severity: info, summary: "Q {device}"}
)");
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz, 0, 1, /*evict_ms=*/20000));
  Collect sink;
  KV store;
  std::mt19937 rng(7);
  int64_t t = kT0;
  for (int step = 0; step < 400; ++step) {
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      t += static_cast<int64_t>(rng() % 300);
      const int dev = static_cast<int>(rng() % 100) * (step < 200 || rng() % 4 ? 1 : 3);
      e.Process(Reading(t, Dev(dev)), t, sink);
    }
    StateDelta d;
    e.TakeDirtySlice(&d, 16);
    Apply(d, &store);
  }
  // The round in progress, then the next (what changed during the first): then all is written.
  for (int rounds = 0; rounds < 2; ++rounds) {
    for (bool done = false; !done;) {
      StateDelta d;
      done = e.TakeDirtySlice(&d, 16);
      Apply(d, &store);
    }
  }
  StateDelta none;
  CHECK(e.TakeDirtySlice(&none, 16));
  CHECK(none.empty());
  StateDelta all;
  e.TakeAll(&all);
  KV fresh;
  Apply(all, &fresh);
  const KV a = Groups(store), b = Groups(fresh);
  CHECK(a.size() == e.group_count());
  CHECK(a.size() > 100);
  CHECK(a == b);
}

TEST_CASE("state packs: a pack number beyond what memory could hold is refused as damage",
          "[engine][state][packs]") {
  auto rs = MustCompile(kRules);
  FixedOffsetZone tz(0);
  Engine e(rs, Opts(&tz));
  Collect sink;
  e.Process(Status(kT0, "a", "fault"), kT0, sink);
  StateDelta d;
  e.TakeAll(&d);
  REQUIRE(d.puts.size() == 1);
  const std::string value(d.puts[0].second);
  // 2^18 - 1 is the last pack number taken; 2^18 would make the engine allocate 2^18 packs.
  const std::string ok = PackKey(*rs, "fault", 1, 0, (1u << 18) - 1);
  const std::string bad = PackKey(*rs, "fault", 1, 0, 1u << 18);
  Engine bad_engine(rs, Opts(&tz));
  CHECK_FALSE(bad_engine.Restore(bad, value));
  Collect none;
  bad_engine.FinishRestore(kT0, none);
  CHECK(bad_engine.group_count() == 0);
  StateDelta dd;
  bad_engine.TakeDirty(&dd);
  CHECK(dd.deletes == std::vector<std::string>{bad});
  Engine ok_engine(rs, Opts(&tz));
  CHECK(ok_engine.Restore(ok, value));
  ok_engine.FinishRestore(kT0, none);
  CHECK(ok_engine.group_count() == 1);
}
