// Events in, commands and alerts out, through the real daemon: JSON objects, JSON batches and
// FlatBuffers batches on the PULL source; both sink formats on PUB sockets (topics, two frames,
// consecutive seq). Then bad input: rejected and counted by reason, the good events of the same
// stream still produce their outputs, the daemon keeps running.
#include <flatbuffers/flatbuffers.h>

#include <algorithm>
#include <signal.h>

#include <cmath>
#include <map>

#include "plugins/codec/event_encoder.h"
#include "rules/timefmt.h"
#include "tests/integration/it_test.h"

using namespace vigie::it;
using vigie::rules::Event;
using vigie::rules::Value;

namespace {

const char* const kCameraRules = R"(rules:
  - name: cam-fault
    description: A camera reporting a fault is rebooted and dispatch is told.
    on: camera.status
    when: status == "fault"
    then:
      - command: {target: "cameras/{device}", action: reboot, code: "{code}", level: 3}
      - alert: {severity: critical, summary: "Camera {device} reports fault {code}", labels: {site: "{site}"}}
)";

Event CamEvent(const std::string& device, const std::string& status, double code, const std::string& site) {
  Event ev;
  ev.kind = "camera.status";
  ev.Set("device", Value::String(device));
  ev.Set("status", Value::String(status));
  ev.Set("code", Value::Number(code));
  ev.Set("site", Value::String(site));
  return ev;
}

std::string FlatBatch(const std::vector<Event>& events) {
  flatbuffers::FlatBufferBuilder b;
  vigie::codec::EncodeEventBatchFlatbuffers(events, &b);
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

std::string Cmd(const std::string& dev, int code) {
  return "command rule=cam-fault key=" + dev + " target=cameras/" + dev +
         " action=reboot params={code=s:" + std::to_string(code) + ",level=n:3}";
}
std::string Alert(const std::string& dev, int code, const std::string& state, const std::string& site) {
  return "alert rule=cam-fault key=" + dev + " state=" + state +
         " severity=critical summary=Camera " + dev + " reports fault " + std::to_string(code) +
         " labels={site=" + site + "}";
}

std::vector<std::string> CanonOf(const std::vector<Received>& v, const std::string& sink) {
  std::vector<std::string> out;
  for (const auto& r : WithoutProbes(v))
    if (r.sink == sink) out.push_back(Canon(r.out, false));
  return out;
}

}  // namespace

TEST_CASE("JSON objects, JSON batches and FlatBuffers batches give commands and alerts in both formats",
          "[integration][flow]") {
  struct Formats {
    const char* commands;
    const char* alerts;
  };
  for (Formats f : {Formats{"json", "flatbuffers"}, Formats{"flatbuffers", "json"}}) {
    INFO("commands format " << f.commands << ", alerts format " << f.alerts);
    TempDir dir;
    DaemonConfig cfg;
    cfg.sink_socket = "pub";
    cfg.commands_format = f.commands;
    cfg.alerts_format = f.alerts;
    Daemon d(dir.path(), cfg);
    d.WriteRules("cameras.yaml", kCameraRules);
    IT_START(d);
    Sender in(d.source_endpoint());
    Outputs out(d);
    REQUIRE(Warmup(in, out));  // the SUBs are connected: nothing after this is dropped
    IT_BARRIER(in, out);       // and whatever the warm-up sent has arrived
    out.Clear();

    const int64_t t0 = NowMs();
    // One JSON object, ts as RFC 3339.
    in.Send(R"({"ts": ")" + vigie::rules::FormatRfc3339Ms(t0) +
            R"(", "device": "cam-1", "kind": "camera.status", "status": "fault", "code": 12, "site": "north"})");
    // A JSON batch: cam-2 fires then resolves; cam-3 is fine.
    in.Send(R"([{"device": "cam-2", "kind": "camera.status", "status": "fault", "code": 13, "site": "east"},
               {"device": "cam-3", "kind": "camera.status", "status": "ok", "code": 0, "site": "east"},
               {"device": "cam-2", "kind": "camera.status", "status": "ok", "code": 0, "site": "east"}])");
    // A FlatBuffers batch.
    in.Send(FlatBatch({CamEvent("cam-4", "fault", 14, "south"), CamEvent("cam-5", "fault", 15, "west")}));
    IT_BARRIER(in, out);

    const auto& all = out.all();
    for (const auto& r : all) {
      INFO("topic " << r.topic << " payload " << r.payload);
      REQUIRE(r.decoded);
      REQUIRE(r.frames == 2);
      if (r.sink == "commands") {
        CHECK(r.out.type == vigie::rules::OutputType::kCommand);
        CHECK(r.topic == r.out.target);
      } else {
        CHECK(r.out.type == vigie::rules::OutputType::kAlert);
        CHECK(r.topic == "alert/" + r.out.severity + "/" + r.out.rule);
      }
      if (r.out.rule != "probe") {
        CHECK(r.out.ts_ms >= t0);
        CHECK(r.out.ts_ms <= r.received_ms);
      }
    }
    CHECK(CanonOf(all, "commands") ==
          std::vector<std::string>{Cmd("cam-1", 12), Cmd("cam-2", 13), Cmd("cam-4", 14), Cmd("cam-5", 15)});
    CHECK(CanonOf(all, "alerts") ==
          std::vector<std::string>{Alert("cam-1", 12, "firing", "north"), Alert("cam-2", 13, "firing", "east"),
                                   Alert("cam-2", 13, "resolved", "east"), Alert("cam-4", 14, "firing", "south"),
                                   Alert("cam-5", 15, "firing", "west")});
    // Every output of the daemon since the clear arrived: seq has no gap and no repeat, and each
    // sink sees its seqs increasing.
    auto seqs = Seqs(all);
    INFO("seqs received");
    CHECK(Consecutive(seqs));
    for (const char* sink : {"commands", "alerts"}) {
      uint64_t last = 0;
      for (const auto& r : all) {
        if (r.sink != sink) continue;
        CHECK(r.out.seq > last);
        last = r.out.seq;
      }
    }
    // The alert topics gateways subscribe to.
    CHECK(std::count_if(all.begin(), all.end(), [](const Received& r) {
            return r.topic == "alert/critical/cam-fault";
          }) == 5);
    IT_STOP_CLEAN(d);
  }
}

TEST_CASE("Bad input is rejected and counted by reason while good events in the same stream still fire",
          "[integration][flow]") {
  TempDir dir;
  DaemonConfig cfg;
  cfg.max_message_bytes = 2048;
  Daemon d(dir.path(), cfg);
  d.WriteRules("cameras.yaml", kCameraRules);
  IT_START(d);
  Sender in(d.source_endpoint());
  Outputs out(d);
  IT_BARRIER(in, out);
  out.Clear();

  // Garbage bytes: not JSON, not a FlatBuffer.
  in.Send(std::string("\x01\x02\xff garbage {", 13));
  // A truncated FlatBuffers batch: identifier present, buffer cut in half.
  std::string fb = FlatBatch({CamEvent("cam-20", "fault", 20, "x"), CamEvent("cam-21", "fault", 21, "x")});
  in.Send(fb.substr(0, fb.size() / 2));
  // Over max_message_bytes (2048) yet a valid event.
  in.Send(R"({"device": "cam-22", "kind": "camera.status", "status": "fault", "code": 22, "site": ")" +
          std::string(3000, 'x') + "\"}");
  // No kind.
  in.Send(R"({"device": "cam-23", "status": "fault", "code": 23, "site": "x"})");
  // A batch mixing good and bad events.
  in.Send(R"([{"device": "cam-6", "kind": "camera.status", "status": "fault", "code": 6, "site": "a"},
             {"device": "cam-24", "status": "fault", "code": 24},
             42,
             {"device": "cam-7", "kind": "camera.status", "status": "fault", "code": 7, "ts": "yesterday"},
             {"device": "cam-8", "kind": "camera.status", "status": "fault", "code": 8, "site": "b"}])");
  // A FlatBuffers batch with an event without kind and a good one.
  Event nokind = CamEvent("cam-25", "fault", 25, "x");
  nokind.kind.clear();
  in.Send(FlatBatch({nokind, CamEvent("cam-10", "fault", 10, "c")}));
  // An empty message and an empty JSON batch.
  in.Send("");
  in.Send("[]");
  IT_BARRIER(in, out);

  CHECK(CanonOf(out.all(), "commands") ==
        std::vector<std::string>{Cmd("cam-6", 6), Cmd("cam-8", 8), Cmd("cam-10", 10)});
  CHECK(CanonOf(out.all(), "alerts") ==
        std::vector<std::string>{Alert("cam-6", 6, "firing", "a"), Alert("cam-8", 8, "firing", "b"),
                                 Alert("cam-10", 10, "firing", "c")});

  Metrics m = d.Scrape();
  INFO("metrics errors: " << m.errors.size());
  REQUIRE(m.errors.empty());
  // garbage, truncated FB, 42, empty message
  CHECK(m.Get("vigie_events_rejected_total", {{"reason", "malformed"}}) == 4);
  CHECK(m.Get("vigie_events_rejected_total", {{"reason", "oversize"}}) == 1);
  // no-kind object, no-kind batch member, no-kind FB event
  CHECK(m.Get("vigie_events_rejected_total", {{"reason", "missing_kind"}}) == 3);
  CHECK(m.Get("vigie_events_rejected_total", {{"reason", "bad_ts"}}) == 1);
  // Valid events: the barrier probes (2) + cam-6, cam-8, cam-10.
  CHECK(m.Get("vigie_events_received_total") == 5);

  // Still running and ready, and still processing.
  CHECK(d.running());
  CHECK(HttpGet(d.port(), "/readyz").status == 200);
  out.Clear();
  in.Send(R"({"device": "cam-11", "kind": "camera.status", "status": "fault", "code": 11, "site": "d"})");
  IT_BARRIER(in, out);
  CHECK(CanonOf(out.all(), "commands") == std::vector<std::string>{Cmd("cam-11", 11)});
  IT_STOP_CLEAN(d);
}

TEST_CASE("Two shards under a stream with reloads in between keep every group's edges in order",
          "[integration][flow]") {
  TempDir dir;
  DaemonConfig cfg;
  cfg.shards = 2;
  Daemon d(dir.path(), cfg);
  d.WriteRules("hot.yaml", R"(rules:
  - name: hot
    on: temp
    when: v > 50
    then:
      - command: {target: "fans/{device}", action: "on"}
      - alert: {severity: warning, summary: "{device} hot"}
    otherwise:
      - command: {target: "fans/{device}", action: "off"}
)");
  IT_START(d);
  Sender in(d.source_endpoint());
  Outputs out(d);
  constexpr int kDevices = 50, kRounds = 8;
  for (int r = 0; r < kRounds; ++r) {
    const double v = r % 2 == 0 ? 60 : 10;
    for (int from = 0; from < kDevices; from += 10) {
      std::vector<Event> batch;
      for (int i = from; i < from + 10; ++i) {
        Event ev;
        ev.kind = "temp";
        ev.Set("device", Value::String("dev-" + std::to_string(i)));
        ev.Set("v", Value::Number(v));
        batch.push_back(std::move(ev));
      }
      if ((from / 10) % 2 == 0) {
        in.Send(FlatBatch(batch));
      } else {
        std::string json;
        vigie::codec::EncodeEventBatchJson(batch, &json);
        in.Send(json);
      }
    }
    // Reload (same rules: every group keeps its state) while the stream is in flight.
    if (r % 2 == 1) REQUIRE(d.Signal(SIGHUP));
  }
  const size_t expected = kDevices * kRounds * 2;  // each round: 2 outputs per device
  REQUIRE(out.WaitFor([&](const std::vector<Received>& v) { return v.size() >= expected; }, 30s));
  REQUIRE(WaitUntil([&] { return d.Metric("vigie_config_reloads_total", {{"result", "success"}}) >= 1; }, 20s));
  out.Drain(200ms);  // anything extra would show here
  const auto& all = out.all();
  CHECK(all.size() == expected);
  CHECK(Consecutive(Seqs(all)));
  // Per device, in the order received on each sink: on/off and firing/resolved alternate.
  std::map<std::string, std::vector<std::string>> cmds, alerts;
  for (const auto& r : all) {
    if (r.sink == "commands") cmds[r.out.key].push_back(r.out.action);
    else alerts[r.out.key].push_back(r.out.state);
  }
  REQUIRE(cmds.size() == kDevices);
  for (const auto& [key, actions] : cmds) {
    INFO(key);
    REQUIRE(actions.size() == kRounds);
    for (int r = 0; r < kRounds; ++r) CHECK(actions[r] == (r % 2 == 0 ? "on" : "off"));
    REQUIRE(alerts[key].size() == kRounds);
    for (int r = 0; r < kRounds; ++r) CHECK(alerts[key][r] == (r % 2 == 0 ? "firing" : "resolved"));
  }
  CHECK(d.running());
  IT_STOP_CLEAN(d);
}
