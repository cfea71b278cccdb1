// vigie-load: the load generator of `make bench`. Builds, before sending anything, a set of
// distinct event batches of the "city" workload (bench/city: 100,000 devices by default, every
// event kind of config/rules, traffic skewed towards a few busy junctions), encoded as
// FlatBuffers EventBatch messages or JSON arrays, then cycles through them at a fixed rate or
// as fast as the receiver takes them (a blocking PUSH: the receiver's back-pressure sets the
// pace), for a bounded time. Nothing is encoded while sending, so the generator is not the
// bottleneck. Events carry no ts: the daemon stamps them with its ingest time (which keeps the
// recycled batches valid for windows and timers).
//
// --sent-ns adds a field sent_ns (wall-clock ns since the epoch, patched in place just before
// each send) to the first event of every batch: a receiver can measure end-to-end latency.
//
// Prints progress on stderr once a second and one JSON line on stdout at the end:
//   {"tool": "vigie-load", "format": ..., "batch": ..., "events": N, "seconds": S, "eps": X, ...}
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "bench/city/city.h"
#include "bench/common/pacer.h"
#include "bench/common/signals.h"
#include "plugins/codec/event_encoder.h"
#include "schema/vigie_generated.h"

namespace {

struct Buffer {
  std::string bytes;
  size_t sent_ns_at = std::string::npos;  // where the sent_ns value is patched, if any
  size_t events = 0;
};

constexpr char kJsonPlaceholder[] = "1000000000000000000";  // 19 digits, like ns since 2001

// Offset of the sent_ns double of the first event of a FlatBuffers batch.
size_t FindSentNs(const std::string& bytes) {
  const auto* batch = vigie::fb::GetEventBatch(bytes.data());
  if (!batch->events() || batch->events()->size() == 0) return std::string::npos;
  const auto* fields = batch->events()->Get(0)->fields();
  if (!fields) return std::string::npos;
  for (const auto* f : *fields) {
    if (f->name() && f->name()->string_view() == "sent_ns") {
      const auto* t = reinterpret_cast<const flatbuffers::Table*>(f);
      const uint8_t* p = t->GetAddressOf(vigie::fb::Field::VT_NUM);
      if (!p) return std::string::npos;
      return static_cast<size_t>(p - reinterpret_cast<const uint8_t*>(bytes.data()));
    }
  }
  return std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  vigie::bench::StopSignals stop;

  std::string endpoint = "tcp://127.0.0.1:7001";
  std::string format = "flatbuffers";
  int devices = 100000;
  int batch = 256;
  int buffers = 1024;
  double rate = 0;
  double duration = 10;
  uint64_t max_messages = 0;
  uint64_t seed = 42;
  bool sent_ns = false;
  bool bind = false;
  CLI::App app{"vigie-load: pre-built city batches at a fixed or maximal rate"};
  app.add_option("--endpoint", endpoint, "where to PUSH")->capture_default_str();
  app.add_flag("--bind", bind, "bind the endpoint instead of connecting");
  app.add_option("--format", format, "flatbuffers or json")
      ->check(CLI::IsMember({"json", "flatbuffers"}))->capture_default_str();
  app.add_option("--devices", devices, "devices in the city")->capture_default_str();
  app.add_option("--batch", batch, "events per message")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--buffers", buffers, "distinct pre-built messages, cycled")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--rate", rate, "events per second (0 = as fast as the receiver takes them)")->capture_default_str();
  app.add_option("--duration", duration, "seconds to send (bounded)")->check(CLI::Range(0.1, 86400.0))->capture_default_str();
  app.add_option("--messages", max_messages,
                 "stop after this many messages (0: --duration only); --messages equal to "
                 "--buffers sends every pre-built message once, e.g. to warm a daemon up")
      ->capture_default_str();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  app.add_flag("--sent-ns", sent_ns, "stamp the first event of each batch with sent_ns (wall ns)");
  CLI11_PARSE(app, argc, argv);
  const bool fb = format == "flatbuffers";

  // 1. Build the messages.
  const double build_t0 = vigie::bench::SteadySeconds();
  vigie::bench::CityOptions copts;
  copts.devices = devices;
  copts.seed = seed;
  copts.with_ts = false;
  vigie::bench::City city(copts);
  std::vector<Buffer> msgs(buffers);
  std::vector<vigie::rules::Event> events(batch);
  flatbuffers::FlatBufferBuilder builder(1 << 20);
  vigie::codec::EventBatchEncoder encoder;
  int64_t city_time = vigie::bench::WallMs();
  size_t total_bytes = 0;
  for (auto& m : msgs) {
    for (auto& ev : events) {
      city_time += 1;  // city time moves on so that incidents come and go between buffers
      city.Next(city_time, &ev);
    }
    if (sent_ns && fb) {
      vigie::rules::Field f;
      f.name = "sent_ns";
      f.value.Assign(vigie::rules::Value::Number(1));  // non-default: stored, hence patchable
      events[0].fields.push_back(std::move(f));
    }
    if (fb) {
      encoder.Encode(events, &builder);
      m.bytes.assign(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
      if (sent_ns) m.sent_ns_at = FindSentNs(m.bytes);
    } else {
      vigie::codec::EncodeEventBatchJson(events, &m.bytes);
      if (sent_ns && m.bytes.size() > 2 && m.bytes[0] == '[' && m.bytes[1] == '{') {
        m.bytes.insert(2, std::string("\"sent_ns\": ") + kJsonPlaceholder + ", ");
        m.sent_ns_at = 2 + std::strlen("\"sent_ns\": ");
      }
    }
    m.events = events.size();
    total_bytes += m.bytes.size();
  }
  std::fprintf(stderr,
               "vigie-load: %d messages of %d events (%s, %.0f bytes/event, %d devices) built in %.1f s\n",
               buffers, batch, format.c_str(),
               static_cast<double>(total_bytes) / (static_cast<double>(buffers) * batch),
               city.device_count(), vigie::bench::SteadySeconds() - build_t0);

  // 2. Send.
  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::push);
  sock.set(zmq::sockopt::sndhwm, 1000);
  sock.set(zmq::sockopt::sndtimeo, 250);
  sock.set(zmq::sockopt::linger, 2000);
  try {
    if (bind) sock.bind(endpoint); else sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "vigie-load: %s %s: %s\n", bind ? "bind" : "connect", endpoint.c_str(), e.what());
    return 2;
  }
  vigie::bench::Pacer pacer(rate);
  uint64_t sent = 0, messages = 0, timeouts = 0, sent_at_report = 0;
  const double t0 = vigie::bench::SteadySeconds();
  double last_report = t0, now = t0;
  size_t i = 0;
  while (!stop.Pending()) {
    now = vigie::bench::SteadySeconds();
    if (now - t0 >= duration) break;
    if (max_messages != 0 && messages >= max_messages) break;
    if (now - last_report >= 1.0) {
      std::fprintf(stderr, "vigie-load: %.0f events/s\n",
                   static_cast<double>(sent - sent_at_report) / (now - last_report));
      last_report = now;
      sent_at_report = sent;
    }
    Buffer& m = msgs[i];
    pacer.Wait(m.events);
    if (m.sent_ns_at != std::string::npos) {
      const int64_t ns = vigie::bench::WallNs();
      if (fb) {
        const double v = static_cast<double>(ns);
        std::memcpy(&m.bytes[m.sent_ns_at], &v, sizeof v);
      } else {
        char digits[32];
        std::snprintf(digits, sizeof digits, "%019" PRId64, ns);
        std::memcpy(&m.bytes[m.sent_ns_at], digits, 19);
      }
    }
    zmq::send_result_t r;
    try {
      r = sock.send(zmq::const_buffer(m.bytes.data(), m.bytes.size()), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      std::fprintf(stderr, "vigie-load: send: %s\n", e.what());
      return 1;
    }
    if (!r) {
      ++timeouts;  // receiver full or absent: retry the same message
      continue;
    }
    sent += m.events;
    ++messages;
    i = (i + 1) % msgs.size();
  }
  const double seconds = now - t0;
  std::printf("{\"tool\": \"vigie-load\", \"format\": \"%s\", \"batch\": %d, \"devices\": %d, "
              "\"rate\": %.0f, \"events\": %llu, \"messages\": %llu, \"seconds\": %.3f, "
              "\"eps\": %.0f, \"send_timeouts\": %llu}\n",
              format.c_str(), batch, city.device_count(), rate,
              static_cast<unsigned long long>(sent), static_cast<unsigned long long>(messages),
              seconds, seconds > 0 ? static_cast<double>(sent) / seconds : 0.0,
              static_cast<unsigned long long>(timeouts));
  std::fflush(stdout);
  return sent > 0 ? 0 : 1;
}
