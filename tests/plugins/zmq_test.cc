// ZeroMQ source and sink over real sockets (ipc:// in /tmp, one path per test), plus config
// validation with line:column and the registry.
#include <catch2/catch.hpp>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "plugins/codec/event_encoder.h"
#include "plugins/codec/output_codec.h"
#include "plugins/registry.h"
#include "plugins/zmq/zmq_config.h"
#include "plugins/zmq/zmq_context.h"
#include "plugins/zmq/zmq_source.h"

using namespace std::chrono_literals;
using vigie::plugins::ConfigError;
using vigie::plugins::RejectReason;
using vigie::rules::Event;

namespace {

// Collects consumed events; tests wait on it with a deadline.
class FakeConsumer : public vigie::plugins::EventConsumer {
 protected:
  bool DoConsume(vigie::rules::EventBuffer& events, int64_t* blocked_ns) override {
    std::lock_guard<std::mutex> l(mu_);
    *blocked_ns += report_blocked_ns_.load();  // before the events: WaitFor sees both
    for (auto& e : events) events_.push_back(std::move(e));
    ++calls_;
    cv_.notify_all();
    return keep_going_;
  }

 public:
  // Waits until at least n events were consumed; false on timeout.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return events_.size() >= n; });
  }
  std::vector<std::string> Kinds() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> k;
    for (const auto& e : events_) k.push_back(e.kind);
    return k;
  }
  std::vector<Event> Events() {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  size_t size() {
    std::lock_guard<std::mutex> l(mu_);
    return events_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    events_.clear();
  }
  bool keep_going_ = true;
  std::atomic<int64_t> report_blocked_ns_{0};  // the wait for room each Consume reports

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
  int calls_ = 0;
};

std::string Endpoint(const char* what) {
  static int n = 0;
  return "ipc:///tmp/vigie-test-" + std::to_string(getpid()) + "-" + what + "-" +
         std::to_string(++n);
}

vigie::plugins::SourceContext Ctx(FakeConsumer* c, size_t max_bytes = 1 << 20) {
  vigie::plugins::SourceContext ctx;
  ctx.consumer = c;
  ctx.max_message_bytes = max_bytes;
  ctx.wall_ms = [] { return int64_t{1000}; };
  ctx.steady_ns = [] { return int64_t{5}; };
  return ctx;
}

std::unique_ptr<vigie::plugins::Source> MakeSource(const std::string& yaml,
                                                   const vigie::plugins::SourceContext& ctx) {
  std::vector<ConfigError> errors;
  auto s = vigie::plugins::FindSourceFactory("zmq")->Create(YAML::Load(yaml), ctx, &errors);
  INFO((errors.empty() ? "" : errors[0].message));
  REQUIRE(errors.empty());
  REQUIRE(s != nullptr);
  return s;
}

std::unique_ptr<vigie::plugins::Sink> MakeSink(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto s = vigie::plugins::FindSinkFactory("zmq")->Create(YAML::Load(yaml), {}, &errors);
  INFO((errors.empty() ? "" : errors[0].message));
  REQUIRE(errors.empty());
  REQUIRE(s != nullptr);
  return s;
}

std::vector<std::string> SourceErrors(const std::string& yaml) {
  std::vector<ConfigError> errors;
  FakeConsumer c;
  auto s = vigie::plugins::FindSourceFactory("zmq")->Create(YAML::Load(yaml), Ctx(&c), &errors);
  CHECK((s == nullptr) == !errors.empty());
  std::vector<std::string> out;
  for (const auto& e : errors) {
    out.push_back(std::to_string(e.line) + ":" + std::to_string(e.col) + ": " + e.message);
  }
  return out;
}

std::vector<std::string> SinkErrors(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto s = vigie::plugins::FindSinkFactory("zmq")->Create(YAML::Load(yaml), {}, &errors);
  CHECK((s == nullptr) == !errors.empty());
  std::vector<std::string> out;
  for (const auto& e : errors) {
    out.push_back(std::to_string(e.line) + ":" + std::to_string(e.col) + ": " + e.message);
  }
  return out;
}

uint64_t Rejected(const vigie::plugins::Source& s, RejectReason r) {
  return s.stats().rejected[static_cast<int>(r)].load();
}

vigie::rules::Output Command(uint64_t seq, std::string target) {
  vigie::rules::Output o;
  o.seq = seq;
  o.ts_ms = 1795727700000;
  o.rule = "r";
  o.key = "k";
  o.target = std::move(target);
  o.action = "dim";
  o.params.push_back({"level", {vigie::rules::ParamValue::Kind::kNumber, 30, false, ""}});
  return o;
}

vigie::rules::Output AlertOut(uint64_t seq) {
  vigie::rules::Output o;
  o.type = vigie::rules::OutputType::kAlert;
  o.seq = seq;
  o.ts_ms = 1795727700000;
  o.rule = "camera-fault";
  o.key = "cam-17";
  o.state = "firing";
  o.severity = "critical";
  o.summary = "fault";
  return o;
}

// Receives one two-frame message (topic, payload) with a deadline.
bool RecvTwo(zmq::socket_t& s, std::string* topic, std::string* payload,
             std::chrono::milliseconds timeout = 5s) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return false;
  zmq::message_t m;
  if (!s.recv(m)) return false;
  *topic = m.to_string();
  if (!m.more()) return false;
  if (!s.recv(m)) return false;
  *payload = m.to_string();
  return !m.more();
}

}  // namespace

TEST_CASE("registry: zmq is built in", "[zmq]") {
  REQUIRE(vigie::plugins::FindSourceFactory("zmq") != nullptr);
  REQUIRE(vigie::plugins::FindSinkFactory("zmq") != nullptr);
  CHECK(vigie::plugins::FindSourceFactory("mqtt") == nullptr);
  CHECK(vigie::plugins::SourceTypes() == std::vector<std::string_view>{"zmq"});
  CHECK(vigie::plugins::SinkTypes() == std::vector<std::string_view>{"zmq"});
}

TEST_CASE("zmq source config errors carry line:column", "[zmq]") {
  CHECK(SourceErrors("type: zmq\nbind: tcp://127.0.0.1:7001\nbnid: x\n") ==
        std::vector<std::string>{"3:1: unknown key 'bnid' for a zmq source (known: type, socket, "
                                 "bind, connect, subscribe, name, rcvhwm)"});
  CHECK(SourceErrors("type: zmq\nsocket: push\nbind: udp://x:1\nrcvhwm: -3\n") ==
        std::vector<std::string>{
            "2:9: socket must be pull or sub",
            "3:7: bad endpoint 'udp://x:1': the scheme must be tcp://, ipc:// or inproc://",
            "4:9: rcvhwm must be a non-negative integer (messages)"});
  CHECK(SourceErrors("{type: zmq, bind: 'ipc:///tmp/a', connect: 'ipc:///tmp/b'}") ==
        std::vector<std::string>{"1:35: bind and connect are exclusive: give exactly one"});
  CHECK(SourceErrors("type: zmq\nsocket: pull\n") ==
        std::vector<std::string>{"1:1: a zmq source needs bind or connect"});
  CHECK(SourceErrors("type: zmq\nbind: ipc:///tmp/x\nsubscribe: [a]\n") ==
        std::vector<std::string>{"3:1: subscribe is only for socket: sub"});
  CHECK(SourceErrors("type: zmq\nsocket: sub\nconnect: tcp://127.0.0.1:99999\nsubscribe: a\n") ==
        std::vector<std::string>{"3:10: bad endpoint 'tcp://127.0.0.1:99999': port must be "
                                 "0..65535 or *",
                                 "4:12: subscribe must be a list of topic prefixes"});
  CHECK(SourceErrors("- a\n- b\n") == std::vector<std::string>{"1:1: expected a map of settings"});
  CHECK(SourceErrors("type: zmq\nsocket: sub\nconnect: 'tcp://127.0.0.1:*'\nsubscribe: [a, b]\n"
                     "name: gw\nrcvhwm: 0\n")
            .empty());
}

TEST_CASE("zmq source config: rcvhwm defaults to ZeroMQ's 1000 messages", "[zmq]") {
  // Messages are batches: 10000 batches of 256 events were 400 MB of RSS under overload.
  std::vector<ConfigError> errors;
  vigie::plugins::zmq_plugin::ZmqSourceConfig cfg;
  REQUIRE(vigie::plugins::zmq_plugin::ParseSourceConfig(YAML::Load("type: zmq\nbind: ipc:///tmp/x\n"),
                                                        &cfg, &errors));
  CHECK(cfg.rcvhwm == 1000);
  REQUIRE(vigie::plugins::zmq_plugin::ParseSourceConfig(
      YAML::Load("type: zmq\nbind: ipc:///tmp/x\nrcvhwm: 50000\n"), &cfg, &errors));
  CHECK(cfg.rcvhwm == 50000);
  CHECK(errors.empty());
}

TEST_CASE("zmq sink config errors carry line:column", "[zmq]") {
  CHECK(SinkErrors("type: zmq\nbind: ipc:///tmp/x\nformat: xml\nsend_timeout: 1s\nfoo: 1\n") ==
        std::vector<std::string>{
            "3:9: format must be json or flatbuffers",
            "5:1: unknown key 'foo' for a zmq sink (known: type, socket, bind, connect, format, "
            "sndhwm, send_timeout, name)",
            "4:1: send_timeout is only for socket: push (a pub socket never waits)"});
  CHECK(SinkErrors("type: zmq\nsocket: push\nconnect: ipc:///tmp/x\nsend_timeout: soon\n") ==
        std::vector<std::string>{
            "4:15: send_timeout must be a duration such as 500ms, 5s or 1m"});
  CHECK(SinkErrors("type: zmq\nsocket: pull\nbind: ipc://\n") ==
        std::vector<std::string>{"2:9: socket must be pub or push", "3:7: bad endpoint 'ipc://': "
                                                                    "empty ipc path"});
  CHECK(SinkErrors("type: zmq\nsocket: push\nbind: inproc://x\nformat: flatbuffers\n"
                   "sndhwm: 10\nsend_timeout: 250ms\n")
            .empty());
}

TEST_CASE("zmq source: bind failure is reported by Start", "[zmq]") {
  FakeConsumer c;
  const std::string ep = "tcp://127.0.0.1:*";
  auto a = MakeSource("{type: zmq, bind: '" + ep + "'}", Ctx(&c));
  std::string err;
  REQUIRE(a->Start(&err));
  // Bind a second source to the port the first one got.
  auto* za = dynamic_cast<vigie::plugins::zmq_plugin::ZmqSource*>(a.get());
  REQUIRE(za != nullptr);
  auto b = MakeSource("{type: zmq, bind: '" + za->last_endpoint() + "'}", Ctx(&c));
  CHECK_FALSE(b->Start(&err));
  CHECK(err.find("Address already in use") != std::string::npos);
  a->Stop();
}

TEST_CASE("zmq pull source: JSON, FlatBuffers, bad and oversize messages", "[zmq]") {
  FakeConsumer c;
  const std::string ep = Endpoint("pull");
  auto src = MakeSource("{type: zmq, socket: pull, bind: '" + ep + "'}", Ctx(&c, 200));
  CHECK(src->name() == "zmq:" + ep);
  std::string err;
  REQUIRE(src->Start(&err));

  zmq::socket_t push(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::push);
  push.connect(ep);
  push.send(zmq::str_buffer(R"({"kind": "a", "device": "d"})"));
  push.send(zmq::str_buffer(R"([{"kind": "b"}, {"nokind": 1}, {"kind": "c", "ts": "x"}])"));
  push.send(zmq::str_buffer("not json"));
  push.send(zmq::buffer(std::string(300, ' ')));  // over 200 bytes
  Event e;
  e.kind = "fb";
  e.ts_ms = 7;
  e.has_ts = true;
  flatbuffers::FlatBufferBuilder fbb;
  vigie::codec::EncodeEventBatchFlatbuffers({e, e}, &fbb);
  push.send(zmq::const_buffer(fbb.GetBufferPointer(), fbb.GetSize()));
  REQUIRE(c.WaitFor(4));
  CHECK(c.Kinds() == std::vector<std::string>{"a", "b", "fb", "fb"});
  // Stats are written before Consume returns for the last batch; Stop joins the thread.
  src->Stop();
  CHECK(src->stats().messages.load() == 5);
  CHECK(src->stats().events.load() == 4);
  CHECK(Rejected(*src, RejectReason::kMissingKind) == 1);
  CHECK(Rejected(*src, RejectReason::kBadTimestamp) == 1);
  CHECK(Rejected(*src, RejectReason::kMalformed) == 1);
  CHECK(Rejected(*src, RejectReason::kOversize) == 1);
}

TEST_CASE("zmq pull source: ingest time comes from the injected clock", "[zmq]") {
  FakeConsumer c;
  const std::string ep = Endpoint("clock");
  auto src = MakeSource("{type: zmq, connect: '" + ep + "'}", Ctx(&c));
  zmq::socket_t push(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::push);
  push.bind(ep);
  std::string err;
  REQUIRE(src->Start(&err));
  push.send(zmq::str_buffer(R"({"kind": "a"})"));
  REQUIRE(c.WaitFor(1));
  src->Stop();
  const auto evs = c.Events();
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].ts_ms == 1000);
  CHECK_FALSE(evs[0].has_ts);
  CHECK(evs[0].ingest_ns == 5);
}

TEST_CASE("zmq source: blocked time is the wait the consumer reports, not the call's length",
          "[zmq]") {
  // The source once timed the whole Consume() call, routing included, as time blocked by
  // backpressure. Here the injected steady clock advances 1 ms a reading, so timing the call
  // would count at least 1 ms per message.
  FakeConsumer c;
  const std::string ep = Endpoint("blocked");
  vigie::plugins::SourceContext ctx = Ctx(&c);
  auto clock = std::make_shared<std::atomic<int64_t>>(0);
  ctx.steady_ns = [clock] { return clock->fetch_add(1000000); };
  auto src = MakeSource("{type: zmq, bind: '" + ep + "'}", ctx);
  std::string err;
  REQUIRE(src->Start(&err));
  zmq::socket_t push(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::push);
  push.connect(ep);
  push.send(zmq::str_buffer(R"({"kind": "a"})"));  // no wait reported
  REQUIRE(c.WaitFor(1));
  c.report_blocked_ns_ = 7000000;                   // as if it waited 7 ms for room
  push.send(zmq::str_buffer(R"({"kind": "b"})"));
  REQUIRE(c.WaitFor(2));
  src->Stop();  // the thread has added what it was told
  CHECK(clock->load() > 0);
  CHECK(src->stats().blocked_ns.load() == 7000000);
}

TEST_CASE("zmq source stops when the consumer says so", "[zmq]") {
  FakeConsumer c;
  c.keep_going_ = false;
  const std::string ep = Endpoint("stop");
  auto src = MakeSource("{type: zmq, bind: '" + ep + "'}", Ctx(&c));
  std::string err;
  REQUIRE(src->Start(&err));
  zmq::socket_t push(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::push);
  push.connect(ep);
  push.send(zmq::str_buffer(R"({"kind": "a"})"));
  REQUIRE(c.WaitFor(1));
  push.send(zmq::str_buffer(R"({"kind": "b"})"));
  src->Stop();  // returns: the thread had already ended
  CHECK(c.Kinds() == std::vector<std::string>{"a"});
}

TEST_CASE("zmq sub source: single- and two-frame messages, prefix filter", "[zmq]") {
  FakeConsumer c;
  const std::string ep = Endpoint("sub");
  auto src = MakeSource("{type: zmq, socket: sub, bind: '" + ep + "', subscribe: ['city/']}",
                        Ctx(&c));
  std::string err;
  REQUIRE(src->Start(&err));
  zmq::socket_t pub(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::pub);
  pub.connect(ep);
  // Slow joiner: publish a probe until the subscription has reached the publisher.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool joined = false;
  while (!joined && std::chrono::steady_clock::now() < deadline) {
    pub.send(zmq::str_buffer("city/probe"), zmq::send_flags::sndmore);
    pub.send(zmq::str_buffer(R"({"kind": "probe"})"));
    joined = c.WaitFor(1, 20ms);
  }
  REQUIRE(joined);
  c.Clear();
  pub.send(zmq::str_buffer("other/x"), zmq::send_flags::sndmore);  // filtered out
  pub.send(zmq::str_buffer(R"({"kind": "filtered"})"));
  pub.send(zmq::str_buffer("city/x"), zmq::send_flags::sndmore);
  pub.send(zmq::str_buffer(R"({"kind": "two-frames"})"));
  // A single frame is its own topic: it must start with the prefix to pass the filter.
  pub.send(zmq::str_buffer("city/ is not JSON"));
  pub.send(zmq::str_buffer("city/y"), zmq::send_flags::sndmore);
  pub.send(zmq::str_buffer(R"({"kind": "last"})"));
  REQUIRE(c.WaitFor(2));
  src->Stop();
  CHECK(c.Kinds() == std::vector<std::string>{"two-frames", "last"});
  CHECK(Rejected(*src, RejectReason::kMalformed) == 1);
}

TEST_CASE("zmq pub sink: topic frame then payload, json and flatbuffers", "[zmq]") {
  for (const char* format : {"json", "flatbuffers"}) {
    INFO(format);
    const std::string ep = Endpoint("pub");
    auto sink = MakeSink(std::string("{type: zmq, socket: pub, bind: '") + ep + "', format: " +
                         format + "}");
    std::string err;
    REQUIRE(sink->Start(&err));
    zmq::socket_t sub(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "lights/");
    sub.set(zmq::sockopt::subscribe, "alert/critical/");
    sub.connect(ep);
    // Slow joiner: send probes until one arrives.
    std::string topic, payload;
    bool joined = false;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!joined && std::chrono::steady_clock::now() < deadline) {
      sink->Send(Command(0, "lights/probe"));
      joined = RecvTwo(sub, &topic, &payload, 20ms);
    }
    REQUIRE(joined);
    while (RecvTwo(sub, &topic, &payload, 50ms)) {
    }  // drain extra probes

    sink->Send(Command(7, "waste/nord"));  // not subscribed
    sink->Send(Command(8, "lights/z42"));
    sink->Send(AlertOut(9));
    REQUIRE(RecvTwo(sub, &topic, &payload));
    CHECK(topic == "lights/z42");
    vigie::rules::Output got;
    if (std::string(format) == "json") {
      CHECK(payload ==
            R"({"type": "command", "seq": 8, "ts": "2026-11-26T21:15:00.000Z", "rule": "r",)"
            R"( "key": "k", "target": "lights/z42", "action": "dim", "params": {"level": 30}})");
      REQUIRE(vigie::codec::DecodeOutputJson(payload, &got));
    } else {
      REQUIRE(vigie::codec::DecodeOutputFlatbuffers(payload, &got));
    }
    CHECK(got.seq == 8);
    CHECK(got.target == "lights/z42");
    REQUIRE(RecvTwo(sub, &topic, &payload));
    CHECK(topic == "alert/critical/camera-fault");
    if (std::string(format) == "json") {
      REQUIRE(vigie::codec::DecodeOutputJson(payload, &got));
    } else {
      REQUIRE(vigie::codec::DecodeOutputFlatbuffers(payload, &got));
    }
    CHECK(got.seq == 9);
    CHECK(got.severity == "critical");
    CHECK(sink->stats().dropped.load() == 0);
    sink->Stop();
  }
}

TEST_CASE("zmq push sink: nothing lost while the consumer keeps up", "[zmq]") {
  for (const char* format : {"json", "flatbuffers"}) {
    INFO(format);
    const std::string ep = Endpoint("push");
    auto sink = MakeSink(std::string("{type: zmq, socket: push, connect: '") + ep +
                         "', format: " + format + "}");
    std::string err;
    REQUIRE(sink->Start(&err));
    zmq::socket_t pull(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::pull);
    pull.bind(ep);
    for (uint64_t i = 1; i <= 100; ++i) sink->Send(Command(i, "desk/1"));
    for (uint64_t i = 1; i <= 100; ++i) {
      std::string topic, payload;
      REQUIRE(RecvTwo(pull, &topic, &payload));
      CHECK(topic == "desk/1");
      vigie::rules::Output got;
      REQUIRE((std::string(format) == "json" ? vigie::codec::DecodeOutputJson(payload, &got)
                                             : vigie::codec::DecodeOutputFlatbuffers(payload, &got)));
      CHECK(got.seq == i);
    }
    CHECK(sink->stats().sent.load() == 100);
    CHECK(sink->stats().dropped.load() == 0);
    sink->Stop();
  }
}

TEST_CASE("zmq push sink: without a consumer, one send waits send_timeout, the next ones do not",
          "[zmq]") {
  std::vector<std::string> logs;  // written by Send, on this thread
  vigie::plugins::SinkContext ctx;
  ctx.log = [&logs](vigie::plugins::LogLevel, std::string_view m) { logs.emplace_back(m); };
  std::vector<ConfigError> errors;
  const std::string ep = Endpoint("lonely");
  auto sink = vigie::plugins::FindSinkFactory("zmq")->Create(
      YAML::Load("{type: zmq, socket: push, bind: '" + ep + "', send_timeout: 1s}"), ctx, &errors);
  REQUIRE(sink != nullptr);
  std::string err;
  REQUIRE(sink->Start(&err));
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 1; i <= 5; ++i) sink->Send(Command(i, "desk/1"));
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(sink->stats().dropped.load() == 5);
  CHECK(sink->stats().sent.load() == 0);
  CHECK(took >= 1s);  // the first send waited its send_timeout...
  CHECK(took < 4s);   // ...the 4 others did not (waiting each would take 5 s)
  REQUIRE(logs.size() >= 2);
  CHECK(logs.back().find("no consumer took an output for 1000 ms") != std::string::npos);

  // A consumer arrives: outputs flow again, and the sink says so.
  zmq::socket_t pull(vigie::plugins::zmq_plugin::Context(), zmq::socket_type::pull);
  pull.connect(ep);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  uint64_t seq = 5;
  while (sink->stats().sent.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    sink->Send(Command(++seq, "desk/1"));  // dropped at once until the connection is up
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(sink->stats().sent.load() == 1);
  std::string topic, payload;
  REQUIRE(RecvTwo(pull, &topic, &payload));
  vigie::rules::Output got;
  REQUIRE(vigie::codec::DecodeOutputJson(payload, &got));
  CHECK(got.seq == seq);
  CHECK(logs.back().find("takes outputs again") != std::string::npos);
  sink->Send(Command(++seq, "desk/1"));
  REQUIRE(RecvTwo(pull, &topic, &payload));
  CHECK(sink->stats().sent.load() == 2);
  sink->Stop();
  const uint64_t dropped = sink->stats().dropped.load();
  sink->Send(Command(++seq, "desk/1"));  // after Stop: counted, no crash
  CHECK(sink->stats().dropped.load() == dropped + 1);
}
