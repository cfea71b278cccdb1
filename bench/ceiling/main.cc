// vigie-ceiling: the ceiling vigie is measured against. A PULL receiver that does the least a
// rules daemon must do with each message: FlatBuffers — verify the buffer and read every event's
// kind and device; JSON — parse the batch with simdjson (On Demand) and read every event's kind
// and device. It counts events and prints events/s. --mode codec runs vigie's own decoders
// (plugins/codec: full rules::Event objects, every field) instead, to show the cost of decoding.
// If the first event of a batch has a sent_ns field (vigie-load --sent-ns), the transport
// latency (send -> received) is sampled.
//
// Stops after --duration seconds counted from the first message, on --idle seconds without a
// message once something was received, or on SIGINT/SIGTERM. Prints one line a second on stderr
// and one JSON line on stdout at the end.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <flatbuffers/flatbuffers.h>
#include <simdjson.h>
#include <zmq.hpp>

#include "bench/common/pacer.h"
#include "bench/common/signals.h"
#include "plugins/codec/fb_decoder.h"
#include "plugins/codec/json_decoder.h"
#include "schema/vigie_generated.h"

namespace {

struct Counts {
  uint64_t events = 0;
  uint64_t bad = 0;      // messages or events that failed
  uint64_t checksum = 0; // sum of string lengths, so that nothing is optimised away
  double sent_ns = 0;    // sent_ns of the first event, 0 if none
};

void RawFlatbuffers(std::string_view msg, Counts* c) {
  const auto* data = reinterpret_cast<const uint8_t*>(msg.data());
  flatbuffers::Verifier::Options o;
  o.max_depth = 16;
  o.max_tables = static_cast<flatbuffers::uoffset_t>(msg.size() / 8 + 16);
  flatbuffers::Verifier v(data, msg.size(), o);
  if (!vigie::fb::VerifyEventBatchBuffer(v)) {
    ++c->bad;
    return;
  }
  const auto* events = vigie::fb::GetEventBatch(data)->events();
  if (!events) return;
  for (const auto* ev : *events) {
    if (!ev->kind() || ev->kind()->size() == 0) {
      ++c->bad;
      continue;
    }
    c->checksum += ev->kind()->size() + (ev->device() ? ev->device()->size() : 0);
    ++c->events;
  }
  if (events->size() > 0 && events->Get(0)->fields()) {
    for (const auto* f : *events->Get(0)->fields())
      if (f->name() && f->name()->string_view() == "sent_ns") c->sent_ns = f->num();
  }
}

class RawJson {
 public:
  void Count(std::string_view msg, Counts* c) {
    if (buf_.size() < msg.size() + simdjson::SIMDJSON_PADDING)
      buf_.resize(msg.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(buf_.data(), msg.data(), msg.size());
    simdjson::ondemand::document doc;
    if (parser_.iterate(buf_.data(), msg.size(), buf_.size()).get(doc)) {
      ++c->bad;
      return;
    }
    simdjson::ondemand::json_type t;
    if (doc.type().get(t)) {
      ++c->bad;
      return;
    }
    if (t == simdjson::ondemand::json_type::array) {
      bool first = true;
      for (auto el : doc.get_array()) {
        simdjson::ondemand::object obj;
        if (el.get_object().get(obj)) {
          ++c->bad;
          return;
        }
        if (first) {
          double ns;
          if (!obj.find_field_unordered("sent_ns").get_double().get(ns)) c->sent_ns = ns;
          first = false;
        }
        One(obj, c);
      }
    } else if (t == simdjson::ondemand::json_type::object) {
      simdjson::ondemand::object obj;
      if (doc.get_object().get(obj)) {
        ++c->bad;
        return;
      }
      One(obj, c);
    } else {
      ++c->bad;
    }
  }

 private:
  static void One(simdjson::ondemand::object& obj, Counts* c) {
    std::string_view kind, device;
    if (obj.find_field_unordered("kind").get_string().get(kind) || kind.empty()) {
      ++c->bad;
      return;
    }
    if (obj.find_field_unordered("device").get_string().get(device)) device = {};
    c->checksum += kind.size() + device.size();
    ++c->events;
  }
  simdjson::ondemand::parser parser_;
  std::vector<char> buf_;
};

}  // namespace

int main(int argc, char** argv) {
  vigie::bench::StopSignals stop;

  std::string endpoint = "tcp://127.0.0.1:7001";
  std::string mode = "raw";
  double duration = 10;
  double idle = 3;
  bool connect = false;
  CLI::App app{"vigie-ceiling: receive, decode and count events (the ceiling for vigie)"};
  app.add_option("--endpoint", endpoint, "PULL endpoint")->capture_default_str();
  app.add_flag("--connect", connect, "connect instead of bind");
  app.add_option("--mode", mode, "raw (verify/parse, read kind and device) or codec (vigie's decoders)")
      ->check(CLI::IsMember({"raw", "codec"}))->capture_default_str();
  app.add_option("--duration", duration, "seconds to measure, from the first message")->capture_default_str();
  app.add_option("--idle", idle, "stop after this many seconds without a message")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::pull);
  sock.set(zmq::sockopt::rcvhwm, 1000);
  sock.set(zmq::sockopt::rcvtimeo, 100);
  sock.set(zmq::sockopt::linger, 0);
  try {
    if (connect) sock.connect(endpoint); else sock.bind(endpoint);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "vigie-ceiling: %s %s: %s\n", connect ? "connect" : "bind",
                 endpoint.c_str(), e.what());
    return 2;
  }
  std::fprintf(stderr, "vigie-ceiling: %s on %s, mode %s\n", connect ? "connected" : "listening",
               endpoint.c_str(), mode.c_str());

  Counts c;
  RawJson raw_json;
  vigie::codec::JsonDecoder json_decoder(64 * 1024 * 1024);
  vigie::codec::FbDecoder fb_decoder(64 * 1024 * 1024);
  vigie::rules::EventBuffer decoded;  // recycled, as in a vigie source
  uint64_t rejected[static_cast<int>(vigie::plugins::RejectReason::kCount_)] = {};
  std::vector<double> latency_us;
  uint64_t messages = 0, bytes = 0, fb_messages = 0, at_report = 0;
  double first = 0, last = 0, last_report = 0;
  zmq::message_t msg;
  const double started = vigie::bench::SteadySeconds();

  while (!stop.Pending()) {
    const double now = vigie::bench::SteadySeconds();
    if (first > 0 && now - first >= duration) break;
    if (first > 0 && now - last >= idle) break;
    if (first == 0 && now - started >= duration + 60) break;  // nobody came
    if (first > 0 && now - last_report >= 1.0) {
      std::fprintf(stderr, "vigie-ceiling: %.0f events/s\n",
                   static_cast<double>(c.events - at_report) / (now - last_report));
      last_report = now;
      at_report = c.events;
    }
    zmq::recv_result_t r;
    try {
      r = sock.recv(msg, zmq::recv_flags::none);
    } catch (const zmq::error_t&) {
      continue;
    }
    if (!r) continue;
    const double t = vigie::bench::SteadySeconds();
    if (first == 0) first = last_report = t;
    last = t;
    ++messages;
    bytes += msg.size();
    std::string_view body(static_cast<const char*>(msg.data()), msg.size());
    const bool is_fb = vigie::codec::IsFlatBufferEvents(body);
    fb_messages += is_fb;
    c.sent_ns = 0;
    if (mode == "raw") {
      if (is_fb) RawFlatbuffers(body, &c); else raw_json.Count(body, &c);
    } else {
      decoded.Clear();
      const int64_t now_ms = vigie::bench::WallMs();
      const size_t n = is_fb ? fb_decoder.DecodeMessage(body, now_ms, 0, &decoded, rejected)
                             : json_decoder.DecodeMessage(body, now_ms, 0, &decoded, rejected);
      c.events += n;
      for (const auto& ev : decoded) {
        c.checksum += ev.kind.size() + ev.fields.size();
        const auto sn = ev.Get("sent_ns");
        if (c.sent_ns == 0 && sn.is_number()) c.sent_ns = sn.num;
        break;  // sent_ns is on the first event only
      }
    }
    if (c.sent_ns > 0 && latency_us.size() < 10000000) {
      latency_us.push_back((static_cast<double>(vigie::bench::WallNs()) - c.sent_ns) / 1000.0);
    }
  }
  if (mode == "codec") {
    for (uint64_t r : rejected) c.bad += r;
  }
  const double seconds = last > first ? last - first : 0;
  double p50 = -1, p99 = -1;
  if (!latency_us.empty()) {
    std::sort(latency_us.begin(), latency_us.end());
    p50 = latency_us[latency_us.size() / 2];
    p99 = latency_us[std::min(latency_us.size() - 1, latency_us.size() * 99 / 100)];
  }
  const char* format = messages == 0 ? "none" : fb_messages == messages ? "flatbuffers"
                                              : fb_messages == 0 ? "json" : "mixed";
  std::printf("{\"tool\": \"vigie-ceiling\", \"mode\": \"%s\", \"format\": \"%s\", "
              "\"events\": %llu, \"messages\": %llu, \"bytes\": %llu, \"bad\": %llu, "
              "\"seconds\": %.3f, \"eps\": %.0f, \"latency_p50_us\": %.1f, "
              "\"latency_p99_us\": %.1f, \"checksum\": %llu}\n",
              mode.c_str(), format, static_cast<unsigned long long>(c.events),
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(c.bad), seconds,
              seconds > 0 ? static_cast<double>(c.events) / seconds : 0.0, p50, p99,
              static_cast<unsigned long long>(c.checksum));
  std::fflush(stdout);
  return messages > 0 ? 0 : 1;
}
