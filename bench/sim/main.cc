// vigie-sim: a simulated Dijon. Sends the events of a City (bench/city) to a vigie source (PUSH,
// connect), paced in small batches, as JSON arrays or FlatBuffers EventBatch messages, with
// ts = now. Prints one line a second on stderr; stops on SIGINT/SIGTERM or after --duration.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "bench/city/city.h"
#include "bench/common/pacer.h"
#include "bench/common/signals.h"
#include "plugins/codec/event_encoder.h"

int main(int argc, char** argv) {
  vigie::bench::StopSignals stop;  // first: before ZeroMQ starts its threads

  std::string endpoint = "tcp://127.0.0.1:7001";
  std::string format = "json";
  int devices = 5000;
  double rate = 20000;
  double duration = 0;
  int batch = 50;
  uint64_t seed = 1;
  bool quiet = false;
  bool no_incidents = false;
  CLI::App app{"vigie-sim: a simulated city (Dijon) sending sensor events to vigie"};
  app.add_option("--endpoint", endpoint, "vigie source to connect to (PUSH)")->capture_default_str();
  app.add_option("--devices", devices, "number of devices, all kinds together")->capture_default_str();
  app.add_option("--rate", rate, "events per second (0 = as fast as possible)")->capture_default_str();
  app.add_option("--duration", duration, "seconds to run (0 = until SIGINT/SIGTERM)")->capture_default_str();
  app.add_option("--format", format, "json or flatbuffers")
      ->check(CLI::IsMember({"json", "flatbuffers"}))->capture_default_str();
  app.add_option("--batch", batch, "events per message")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--seed", seed, "random seed (the same seed gives the same city)")->capture_default_str();
  app.add_flag("--no-incidents", no_incidents, "a healthy city: no faults, nothing should fire");
  app.add_flag("--quiet", quiet, "no per-second line");
  CLI11_PARSE(app, argc, argv);

  vigie::bench::CityOptions copts;
  copts.devices = devices;
  copts.seed = seed;
  copts.incidents = !no_incidents;
  vigie::bench::City city(copts);

  zmq::context_t ctx(1);
  zmq::socket_t sock(ctx, zmq::socket_type::push);
  sock.set(zmq::sockopt::sndhwm, 10000);
  sock.set(zmq::sockopt::sndtimeo, 200);  // so that a missing receiver does not block Ctrl-C
  sock.set(zmq::sockopt::linger, 1000);
  try {
    sock.connect(endpoint);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "vigie-sim: cannot connect to %s: %s\n", endpoint.c_str(), e.what());
    return 2;
  }
  std::fprintf(stderr, "vigie-sim: %d devices, %s to %s, %s events/s in batches of %d\n",
               city.device_count(), format.c_str(), endpoint.c_str(),
               rate > 0 ? std::to_string(static_cast<long>(rate)).c_str() : "max", batch);

  const bool fb = format == "flatbuffers";
  std::vector<vigie::rules::Event> events(batch);
  std::string json;
  flatbuffers::FlatBufferBuilder builder(64 * 1024);
  vigie::codec::EventBatchEncoder encoder;
  vigie::bench::Pacer pacer(rate);

  const double t0 = vigie::bench::SteadySeconds();
  double last_report = t0;
  uint64_t sent = 0, sent_at_report = 0, dropped = 0;
  while (!stop.Pending()) {
    const double now_s = vigie::bench::SteadySeconds();
    if (duration > 0 && now_s - t0 >= duration) break;
    if (now_s - last_report >= 1.0) {
      if (!quiet) {
        std::fprintf(stderr, "vigie-sim: %.0f events/s sent (total %llu, dropped %llu, incidents %llu)\n",
                     static_cast<double>(sent - sent_at_report) / (now_s - last_report),
                     static_cast<unsigned long long>(sent), static_cast<unsigned long long>(dropped),
                     static_cast<unsigned long long>(city.incidents_started()));
      }
      last_report = now_s;
      sent_at_report = sent;
    }
    pacer.Wait(events.size());
    const int64_t now_ms = vigie::bench::WallMs();
    for (auto& ev : events) city.Next(now_ms, &ev);
    zmq::send_result_t r;
    try {
      if (fb) {
        encoder.Encode(events, &builder);
        r = sock.send(zmq::const_buffer(builder.GetBufferPointer(), builder.GetSize()),
                      zmq::send_flags::none);
      } else {
        vigie::codec::EncodeEventBatchJson(events, &json);
        r = sock.send(zmq::const_buffer(json.data(), json.size()), zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      std::fprintf(stderr, "vigie-sim: send failed: %s\n", e.what());
      return 1;
    }
    if (r) sent += events.size(); else dropped += events.size();
  }
  std::fprintf(stderr, "vigie-sim: stopped after %.1f s, %llu events sent, %llu dropped\n",
               vigie::bench::SteadySeconds() - t0, static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(dropped));
  sock.set(zmq::sockopt::linger, 0);
  return 0;
}
