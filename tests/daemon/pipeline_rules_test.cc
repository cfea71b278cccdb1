// The pipeline over the real rules engine: a RuleSet compiled from YAML, several shards, a
// manual clock. Edge-triggered rules make routing mistakes visible: a group processed on two
// shards would activate twice, a group split across shards would miss its activation.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/pipeline.h"
#include "daemon/state/store.h"
#include "rules/loader.h"
#include "rules/ruleset_api.h"
#include "rules/timezone.h"

namespace vigie::daemon {
namespace {

using rules::Event;
using rules::EventBuffer;
using rules::Output;
using rules::Value;

bool WaitUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
  }
  return true;
}

std::shared_ptr<const rules::RuleSet> Compile(const std::string& yaml) {
  std::vector<rules::LoadError> errors;
  auto rs = rules::CompileRules({{"test.yaml", yaml}}, &errors);
  std::string msgs;
  for (const auto& e : errors) msgs += e.ToString() + "\n";
  INFO(msgs);
  REQUIRE(rs);
  return rs;
}

const char kRules[] = R"(rules:
  - name: zone-busy
    on: traffic
    group_by: zone
    when: count > 5
    then:
      - command: {target: "lights/{zone}", action: brighten}
  - name: device-fault
    on: traffic
    group_by: device
    when: status == "fault"
    then:
      - alert: {severity: critical, summary: "Device {device} fault"}
  - name: camera-silent
    on: camera.heartbeat
    absent_for: 2m
    then:
      - alert: {severity: warning, summary: "Camera {device} silent"}
)";

Event Traffic(int64_t ts, const std::string& device, const std::string& zone, double count,
              const std::string& status) {
  Event ev;
  ev.ts_ms = ts;
  ev.has_ts = true;
  ev.kind = "traffic";
  ev.Set("device", Value::String(device));
  ev.Set("zone", Value::String(zone));
  ev.Set("count", Value::Number(count));
  ev.Set("status", Value::String(status));
  return ev;
}

Event Heartbeat(int64_t ts, const std::string& device) {
  Event ev;
  ev.ts_ms = ts;
  ev.has_ts = true;
  ev.kind = "camera.heartbeat";
  ev.Set("device", Value::String(device));
  return ev;
}

struct Rig {
  Rig(std::shared_ptr<const rules::RuleSet> rs, int shards, int64_t now_ms,
      StateStore* store = nullptr)
      : clock(now_ms, 1), tz(0) {
    PipelineOptions o;
    o.shards = shards;
    o.tz = &tz;
    o.checkpoint_interval_ms = 0;  // final checkpoint only
    PipelineDeps deps;
    deps.clock = &clock;
    if (store) {
      deps.checkpoint = [store](int, rules::StateDelta&& d) {
        std::string err;
        store->Write(d, &err);
      };
    }
    p = std::make_unique<Pipeline>(o, std::move(deps), std::move(rs));
    p->SetObserver([this](const Output& out) {
      std::lock_guard<std::mutex> lk(mu);
      outs.push_back(out);
    });
  }
  std::vector<Output> Outs() {
    std::lock_guard<std::mutex> lk(mu);
    return outs;
  }
  size_t Count() {
    std::lock_guard<std::mutex> lk(mu);
    return outs.size();
  }

  ManualClock clock;
  rules::FixedOffsetZone tz;
  std::mutex mu;
  std::vector<Output> outs;
  std::unique_ptr<Pipeline> p;
};

std::vector<std::string> Render(const std::vector<Output>& outs) {
  std::vector<std::string> lines;
  for (const auto& o : outs) {
    if (o.type == rules::OutputType::kCommand) {
      lines.push_back("command " + o.rule + " " + o.key + " " + o.target + " " + o.action);
    } else {
      lines.push_back("alert " + o.rule + " " + o.key + " " + o.state + " " + o.summary);
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_CASE("pipeline+engine: each group lives on one shard, also with two group_by fields",
          "[pipeline][concurrency]") {
  const int64_t t0 = 1764194400000;
  Rig rig(Compile(kRules), 4, t0);
  rig.p->Start();
  // Two sources, each sending every device three faults and every zone busy counts.
  std::vector<std::thread> sources;
  for (int s = 0; s < 2; ++s) {
    sources.emplace_back([&rig, s, t0] {
      auto consumer = rig.p->NewConsumer();
      for (int round = 0; round < 3; ++round) {
        EventBuffer msg;
        for (int d = s; d < 20; d += 2) {
          msg.Push(Traffic(t0, "d" + std::to_string(d), "z" + std::to_string(d % 5), 10,
                                "fault"));
        }
        consumer->Consume(msg);
      }
    });
  }
  for (auto& t : sources) t.join();
  rig.p->Stop();

  std::vector<std::string> want;
  for (int d = 0; d < 20; ++d) {
    want.push_back("alert device-fault d" + std::to_string(d) + " firing Device d" +
                   std::to_string(d) + " fault");
  }
  for (int z = 0; z < 5; ++z) {
    want.push_back("command zone-busy z" + std::to_string(z) + " lights/z" + std::to_string(z) +
                   " brighten");
  }
  std::sort(want.begin(), want.end());
  const auto outs = rig.Outs();
  CHECK(Render(outs) == want);
  for (size_t i = 0; i < outs.size(); ++i) CHECK(outs[i].seq == i + 1);

  // Each event was evaluated once per rule it can match, across all shards.
  const std::string json = rig.p->RulesJson();
  CHECK(json.find(R"({"name":"zone-busy","file":"test.yaml","line":2,"kind":"stateless",)") !=
        std::string::npos);
  CHECK(json.find(R"("active_groups":5,"groups":5,"evaluations":60,"activations":5,"errors":0})") !=
        std::string::npos);
  CHECK(json.find(R"("active_groups":20,"groups":20,"evaluations":60,"activations":20,"errors":0})") !=
        std::string::npos);

  MetricsWriter w;
  rig.p->Collect(w);
  const std::string text = w.Render();
  CHECK(text.find("vigie_rule_activations_total{rule=\"device-fault\"} 20\n") != std::string::npos);
  CHECK(text.find("vigie_alerts_sent_total{severity=\"critical\",state=\"firing\"} 20\n") !=
        std::string::npos);
  CHECK(text.find("vigie_commands_sent_total 5\n") != std::string::npos);
  CHECK(text.find("vigie_events_unmatched_total 0\n") != std::string::npos);
}

TEST_CASE("pipeline+engine: an absence timer fires from the manual clock, at its own instant",
          "[pipeline][concurrency]") {
  const int64_t t0 = 1764194400000;
  Rig rig(Compile(kRules), 2, t0);
  rig.p->Start();
  EventBuffer msg{Heartbeat(t0, "cam-1"), Traffic(t0, "x", "y", 0, "ok")};
  REQUIRE(rig.p->consumer()->Consume(msg));
  // The heartbeat goes to one shard, the traffic event to one or two (zone and device groups).
  REQUIRE(WaitUntil([&] {
    return rig.p->shard(0).stats().processed.load() + rig.p->shard(1).stats().processed.load() >=
           2;
  }));
  CHECK(rig.Count() == 0);
  // Well past the due instant: the alert carries the timer's instant, not the clock's.
  rig.clock.SetMs(t0 + 125000);
  rig.p->Wake();
  REQUIRE(WaitUntil([&] { return rig.Count() == 1; }));
  const Output o = rig.Outs()[0];
  CHECK(o.rule == "camera-silent");
  CHECK(o.key == "cam-1");
  CHECK(o.state == "firing");
  CHECK(o.ts_ms == t0 + 120000);
  rig.p->Stop();
  CHECK(rig.Count() == 1);
}

TEST_CASE("pipeline+engine: reload keeps unchanged rules' state; restore keeps active groups",
          "[pipeline][concurrency]") {
  const int64_t t0 = 1764194400000;
  MemStateStore store;
  {
    Rig rig(Compile(kRules), 3, t0, &store);
    rig.p->Start();
    EventBuffer msg;
    for (int d = 0; d < 6; ++d) msg.Push(Traffic(t0, "d" + std::to_string(d), "z", 0, "fault"));
    REQUIRE(rig.p->consumer()->Consume(msg));
    REQUIRE(WaitUntil([&] { return rig.Count() == 6; }));

    // Reload with the same device-fault rule plus a new one: no new activation for active groups.
    const std::string more = std::string(kRules) + R"(  - name: zone-any
    on: traffic
    group_by: zone
    when: count >= 0
    then:
      - command: {target: "zones/{zone}", action: seen}
)";
    REQUIRE(rig.p->Reload(Compile(more)));
    CHECK(rig.p->RulesJson().find("\"name\":\"zone-any\"") != std::string::npos);
    msg.Clear();
    for (int d = 0; d < 6; ++d) msg.Push(Traffic(t0 + 1, "d" + std::to_string(d), "z", 0, "fault"));
    REQUIRE(rig.p->consumer()->Consume(msg));
    rig.p->Stop();
    const auto outs = rig.Outs();
    REQUIRE(outs.size() == 7);  // 6 faults before, the new rule's first zone activation after
    CHECK(outs[6].rule == "zone-any");
  }
  REQUIRE(store.size() > 0);
  {
    // Restart over the checkpointed state: the same faults again activate nothing.
    Rig rig(Compile(kRules), 2, t0 + 1000);  // a different shard count: restore re-homes groups
    std::string err;
    REQUIRE(rig.p->Restore(store, &err));
    CHECK(rig.p->restored_entries() > 0);
    rig.p->Start();
    EventBuffer msg;
    for (int d = 0; d < 6; ++d) msg.Push(Traffic(t0 + 1000, "d" + std::to_string(d), "z", 0, "fault"));
    msg.Push(Traffic(t0 + 1000, "d9", "z", 0, "fault"));  // a new group does activate
    REQUIRE(rig.p->consumer()->Consume(msg));
    rig.p->Stop();
    const auto outs = rig.Outs();
    REQUIRE(outs.size() == 1);
    CHECK(outs[0].key == "d9");
  }
}

}  // namespace
}  // namespace vigie::daemon
