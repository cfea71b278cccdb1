// vigie-probe: sender -> subscriber latency of a running vigie, from in-band timestamps.
//
// vigie-load --sent-ns stamps the first event of each message with `sent_ns` (wall-clock ns, just
// before the send). A probe rule (bench/bench.py adds it to the half-rate latency run) turns
// stamped events into alerts that carry the stamp:
//
//   - name: bench-probe
//     on: "*"
//     where: exists(sent_ns)
//     when: floor(sent_ns / 1000000) % 2 == 0      # flips with the stamp's millisecond: about
//     then:                                        # every other stamped event changes the
//       - alert: {severity: info, summary: probe, labels: {sent_ns: "{sent_ns}"}}   # state
//     otherwise:
//       - alert: {severity: info, summary: probe, labels: {sent_ns: "{sent_ns}"}}
//
// (grouped by device, as the bench rules are, so that it adds no copy of an event to a shard).
// A resolved alert repeats the labels of the alert it resolves, an older stamp: only firing
// alerts are read.
//
// This tool subscribes to the alerts PUB socket with the topic of that rule (alert/info/bench-probe),
// reads `labels.sent_ns` of each JSON alert, and records now - sent_ns: the first event of a
// message from vigie-load's send, through ZeroMQ, the decoding of its whole message, routing, a
// shard, the dispatcher and the alerts sink, to this subscriber. Same machine, same wall clock.
//
// It counts alerts received after --warmup seconds, for --duration seconds in all, and prints a
// JSON summary: probes, p50/p99/p99.9/max in ms, and alerts it could not read. Binds nothing.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <simdjson.h>
#include <zmq.hpp>

#include "bench/common/pacer.h"
#include "bench/common/signals.h"

int main(int argc, char** argv) {
  vigie::bench::StopSignals signals;  // first: before ZeroMQ starts its threads
  std::string endpoint = "tcp://127.0.0.1:7003";
  std::string topic = "alert/info/bench-probe";
  double duration = 10, warmup = 0;
  CLI::App app{"vigie-probe: sender -> subscriber latency from in-band sent_ns stamps"};
  app.add_option("--endpoint", endpoint, "the alerts PUB socket to subscribe to")->capture_default_str();
  app.add_option("--topic", topic, "topic prefix of the probe rule's alerts")->capture_default_str();
  app.add_option("--duration", duration, "seconds to run in all (bounded)")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "seconds whose probes are not counted")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::sub);
  try {
    sock.set(zmq::sockopt::subscribe, topic);
    sock.set(zmq::sockopt::rcvhwm, 1000000);
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "vigie-probe: cannot connect to %s: %s\n", endpoint.c_str(), e.what());
    return 2;
  }

  simdjson::ondemand::parser parser;
  std::string buf;
  std::vector<double> latency_ms;
  uint64_t unreadable = 0, early = 0;
  const int64_t t0 = vigie::bench::WallNs();
  const int64_t counted_from = t0 + static_cast<int64_t>(warmup * 1e9);
  const int64_t end = t0 + static_cast<int64_t>(duration * 1e9);
  zmq::message_t topic_frame, payload;
  while (!signals.Pending()) {
    const int64_t now = vigie::bench::WallNs();
    if (now >= end) break;
    zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
    const long wait_ms = std::min<long>(100, std::max<long>(1, (end - now) / 1000000));
    if (zmq::poll(&item, 1, std::chrono::milliseconds(wait_ms)) <= 0) continue;
    while (sock.recv(topic_frame, zmq::recv_flags::dontwait)) {
      if (!topic_frame.more() || !sock.recv(payload, zmq::recv_flags::none)) {
        ++unreadable;
        continue;
      }
      while (payload.more()) {  // not ours: drain the rest of the message
        if (!sock.recv(payload, zmq::recv_flags::none)) break;
      }
      const int64_t received = vigie::bench::WallNs();
      buf.assign(static_cast<const char*>(payload.data()), payload.size());
      buf.resize(payload.size() + simdjson::SIMDJSON_PADDING);
      simdjson::ondemand::document doc;
      std::string_view text;
      std::string_view state;
      if (parser.iterate(buf.data(), payload.size(), buf.size()).get(doc) ||
          doc.find_field_unordered("state").get_string().get(state)) {
        ++unreadable;  // e.g. a FlatBuffers sink: the probe needs `format: json`
        continue;
      }
      if (state != "firing") continue;  // a resolved alert carries its firing alert's stamp
      if (doc.find_field_unordered("labels").find_field_unordered("sent_ns").get_string().get(text)) {
        ++unreadable;
        continue;
      }
      const std::string stamp(text);
      char* stop = nullptr;
      const double sent = std::strtod(stamp.c_str(), &stop);
      if (stop == stamp.c_str() || sent <= 0) {
        ++unreadable;
        continue;
      }
      if (received < counted_from) {
        ++early;
        continue;
      }
      latency_ms.push_back((static_cast<double>(received) - sent) / 1e6);
    }
  }
  std::sort(latency_ms.begin(), latency_ms.end());
  auto pct = [&](double q) {
    if (latency_ms.empty()) return -1.0;
    const size_t i = std::min(latency_ms.size() - 1, static_cast<size_t>(q * static_cast<double>(latency_ms.size())));
    return latency_ms[i];
  };
  std::printf(
      "{\"tool\": \"vigie-probe\", \"probes\": %zu, \"early\": %llu, \"unreadable\": %llu, "
      "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p99.9_ms\": %.3f, \"max_ms\": %.3f}\n",
      latency_ms.size(), static_cast<unsigned long long>(early),
      static_cast<unsigned long long>(unreadable), pct(0.5), pct(0.99), pct(0.999),
      latency_ms.empty() ? -1.0 : latency_ms.back());
  if (latency_ms.empty()) {
    std::fprintf(stderr, "vigie-probe: no probe alert received on %s (topic %s)\n", endpoint.c_str(),
                 topic.c_str());
    return 1;
  }
  return 0;
}
