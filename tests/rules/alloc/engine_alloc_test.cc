// The engine allocates nothing per event in steady state: once every group exists and its window
// has reached its working size, processing events (rule matching, where, group lookup, window
// updates and expiry, tumbling period closes, absence deadlines, timers) makes zero calls to
// operator new or delete. Neither do events that fire: the engine fills the output its sink
// hands out (OutputSink::NewOutput, recycled), and an alert's firing record reuses its slot.
// Checkpoints (TakeDirty) serialize and are not on the event path.
//
// This binary replaces the global operator new/delete (tests/common/counting_new.h), which is why
// it is an executable of its own. The first case checks that the counter sees the engine's
// allocations when groups are created: the zero below is not a counter that never counts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/engine.h"
#include "rules/loader.h"
#include "rules/timezone.h"
#include "tests/common/counting_new.h"
#include "tests/common/firing_rules.h"

using namespace vigie::rules;

namespace {

// One rule of each shape the engine runs per event; thresholds the stream never reaches.
const char* kRules = R"(rules:
  - name: lamp-overpower
    on: lamp.status
    where: status == "ok"
    when: power_w > 1000
    then:
      - command: {target: "lamp/{device}", action: "off"}
  - name: lamp-stuck
    on: lamp.status
    when: power_w > 900
    for: 1m
    then:
      - alert: {severity: warning, summary: "lamp {device} stuck at {power_w} W"}
  - name: junction-congested
    on: traffic
    group_by: junction
    window: {sliding: 1m}
    let:
      n: count()
      v: avg(vehicles)
      s: max(speed)
      lanes: count_distinct(lane)
    when: n > 1000000 and v > 1000
    then:
      - command: {target: "lights/{junction}", action: extend, seconds: 10}
  - name: zone-quiet
    on: traffic
    group_by: zone
    window: {tumbling: 10s}
    when: sum(vehicles) < 0
    then:
      - command: {target: "lamps/{zone}", action: dim}
  - name: pressure-drop
    on: water.pressure
    window: {count: 5}
    when: avg(bar) > 100
    then:
      - alert: {severity: critical, summary: "pressure {device}"}
  - name: camera-silent
    on: camera.heartbeat
    absent_for: 10m
    then:
      - alert: {severity: warning, summary: "camera {device} silent"}
  - name: camera-busy
    on: camera.heartbeat
    group_by: zone
    window: {session: 30s}
    when: count() > 1000000
    then:
      - alert: {severity: info, summary: "zone {zone} busy"}
)";

struct Discard : OutputSink {
  uint64_t n = 0;
  void Emit(Output&&) override { ++n; }
};

constexpr int kDevices = 400;
constexpr int64_t kT0 = 1795726800000;  // 2026-11-26T18:20:00Z

// The stream: device i sends event kind i % 4, one event every 5 ms of engine time, so every
// device sends every 2 s and the 1-minute windows hold ~30 events (past their exact phase).
class Stream {
 public:
  Stream() {
    static const char* kinds[] = {"lamp.status", "traffic", "water.pressure", "camera.heartbeat"};
    for (int i = 0; i < kDevices; ++i) {
      Event e;
      e.kind = kinds[i % 4];
      std::string n = std::to_string(i);
      e.Set("device", Value::String("dev-" + n));
      e.Set("zone", Value::String("zone-" + std::to_string(i % 13)));
      e.Set("junction", Value::String("j-" + std::to_string(i % 29)));
      e.Set("status", Value::String("ok"));
      e.Set("lane", Value::String(i % 3 ? "car" : "bus"));
      e.Set("power_w", Value::Number(40 + i % 50));
      e.Set("vehicles", Value::Number(i % 17));
      e.Set("speed", Value::Number(30 + i % 20));
      e.Set("bar", Value::Number(2.5));
      events_.push_back(std::move(e));
    }
  }
  // Processes n events (values vary in place, without allocating).
  void Run(Engine& e, OutputSink& out, int n) {
    for (int k = 0; k < n; ++k) {
      Event& ev = Set(next_);
      now_ += 5;
      e.Process(ev, now_, out);
      ++next_;
    }
  }
  // The same events, with the hints a shard gives (Engine::Prepare, kLookahead events ahead;
  // an event's values are set before it is prepared, as a batch's are).
  void RunAhead(Engine& e, OutputSink& out, int n) {
    constexpr uint64_t kAhead = Engine::kLookahead;
    const uint64_t end = next_ + static_cast<uint64_t>(n);
    for (uint64_t a = 0; a < kAhead && next_ + a < end; ++a) e.Prepare(Set(next_ + a));
    for (; next_ < end; ++next_) {
      if (next_ + kAhead < end) e.Prepare(Set(next_ + kAhead));
      now_ += 5;
      e.Process(events_[next_ % kDevices], now_, out);
    }
    e.DropPrepared();
  }
  int64_t now() const { return now_; }

 private:
  // The i-th event of the stream: its device's event with this turn's values.
  Event& Set(uint64_t i) {
    Event& ev = events_[i % kDevices];
    ev.Set("vehicles", Value::Number(static_cast<double>(i % 17)));
    ev.Set("speed", Value::Number(static_cast<double>(30 + i % 23)));
    ev.Set("lane", Value::String(i % 3 ? "car" : "bus"));
    ev.ts_ms = kT0 + 5 * static_cast<int64_t>(i + 1);
    return ev;
  }

  std::vector<Event> events_;
  uint64_t next_ = 0;
  int64_t now_ = kT0;
};

std::shared_ptr<const RuleSet> Compile() {
  std::vector<LoadError> errors;
  auto rs = CompileRules({RuleSource{"alloc.yaml", kRules}}, &errors);
  REQUIRE(errors.empty());
  REQUIRE(rs != nullptr);
  return rs;
}

}  // namespace

TEST_CASE("engine alloc: the counter sees group creation", "[alloc]") {
  auto rs = Compile();
  FixedOffsetZone tz(0);
  EngineOptions o;
  o.tz = &tz;
  Engine e(rs, o);
  Discard out;
  Stream s;
  AllocCounter c;
  s.Run(e, out, kDevices);  // first event of every device: groups and windows are created
  c.Stop();
  CHECK(c.news() >= static_cast<uint64_t>(kDevices));
}

TEST_CASE("engine alloc: steady-state events allocate nothing", "[alloc]") {
  auto rs = Compile();
  FixedOffsetZone tz(0);
  struct Variant {
    int shards;
    bool ahead;  // the lookahead on, events hinted as a shard hints them (Engine::Prepare)
  };
  for (const Variant v : {Variant{1, false}, Variant{2, false}, Variant{1, true}, Variant{2, true}}) {
    INFO("shards " << v.shards << (v.ahead ? ", lookahead on" : ""));
    EngineOptions o;
    o.tz = &tz;
    o.shard_count = v.shards;
    o.shard_index = v.shards - 1;
    if (v.ahead) o.lookahead = EngineOptions::Lookahead::kOn;
    Engine e(rs, o);
    Discard out;
    Stream s;
    // In batches of 250, as a shard takes them (the hints are dropped at each batch's end).
    auto run = [&](int n) {
      for (int done = 0; done < n; done += 250) {
        const int k = std::min(250, n - done);
        if (v.ahead) s.RunAhead(e, out, k);
        else s.Run(e, out, k);
      }
    };
    // Warm up for 12 minutes of engine time: all groups, full windows, many period closes, and
    // a checkpoint so the dirty list has its working capacity. (count_distinct keeps, per pane,
    // the list of values it added; each list keeps the capacity of the largest pane that used its
    // ring position, which takes a few window lengths to be reached everywhere.)
    run(144000);
    StateDelta d;
    e.TakeDirty(&d);
    run(12000);
    e.TakeDirty(&d);
    const size_t groups = e.group_count();

    AllocCounter c;
    run(24000);  // 2 minutes: windows slide, 12 tumbling closes, sessions continue
    c.Stop();
    CHECK(e.group_count() == groups);
    CHECK(out.n == 0);  // no rule fired: the output path is the next test case
    CHECK(c.news() == 0);
    CHECK(c.deletes() == 0);
    CHECK(s.now() > kT0 + 5 * 60 * 1000);
  }
}

TEST_CASE("engine alloc: events that fire and resolve allocate nothing once warm", "[alloc]") {
  std::vector<LoadError> errors;
  auto rs = CompileRules({RuleSource{"firing.yaml", vigie::testing::kFiringRules}}, &errors);
  REQUIRE(errors.empty());
  REQUIRE(rs != nullptr);
  FixedOffsetZone tz(0);
  EngineOptions o;
  o.tz = &tz;
  Engine e(rs, o);
  Discard out;  // does not move from the output: the default NewOutput hands the same one back
  Stream s;
  s.Run(e, out, 40000);  // every device fired and resolved many times: firing slots exist
  StateDelta d;
  e.TakeDirty(&d);
  s.Run(e, out, 4000);
  e.TakeDirty(&d);
  const uint64_t before = out.n;

  AllocCounter c;
  s.Run(e, out, 20000);
  c.Stop();
  const uint64_t fired = out.n - before;
  CHECK(fired > 5000);  // about one output per traffic event: the output path was exercised
  CHECK(c.news() == 0);
  CHECK(c.deletes() == 0);
}
