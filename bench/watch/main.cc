// vigie-watch: the live view of `make run`. Subscribes to the commands and alerts sockets of a
// running vigie (SUB, all topics), scrapes its /metrics once a second, and prints once a second:
// events/s processed, rejected events, activations/s, commands and alerts (per second and total),
// queue depth, RSS, and the last 5 outputs. ANSI screen clearing when stdout is a terminal,
// plain lines otherwise. Stops on SIGINT/SIGTERM or after --duration.
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <zmq.hpp>

#include "bench/common/pacer.h"
#include "bench/common/signals.h"
#include "plugins/codec/output_codec.h"

namespace {

// Sums of every sample of each metric name (labels ignored), from Prometheus text.
std::map<std::string, double> ParseMetrics(std::string_view text) {
  std::map<std::string, double> sums;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos) continue;
    std::string name(line.substr(0, name_end));
    size_t value_at = line[name_end] == '{' ? line.find("} ", name_end) : name_end;
    if (value_at == std::string_view::npos) continue;
    value_at = line.find_first_not_of(" }", value_at);
    if (value_at == std::string_view::npos) continue;
    std::string value(line.substr(value_at));
    const size_t sp = value.find(' ');  // an optional timestamp follows
    if (sp != std::string::npos) value.resize(sp);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    sums[name] += v;
  }
  return sums;
}

std::string FormatOutput(const vigie::rules::Output& o) {
  char when[32];
  const time_t secs = static_cast<time_t>(o.ts_ms / 1000);
  tm local{};
  localtime_r(&secs, &local);
  std::snprintf(when, sizeof when, "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min,
                local.tm_sec, static_cast<int>(o.ts_ms % 1000));
  std::string line = std::string(when) + "  " + o.rule + "  [" + o.key + "]  ";
  if (o.type == vigie::rules::OutputType::kCommand) {
    line += o.target + " " + o.action;
  } else {
    line += o.severity + " " + o.state + ": " + o.summary;
  }
  if (line.size() > 150) line = line.substr(0, 147) + "...";
  return line;
}

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 9464;
  std::string path = "/metrics";
};

bool ParseUrl(const std::string& url, Endpoint* ep) {
  std::string_view s = url;
  if (s.substr(0, 7) != "http://") return false;
  s.remove_prefix(7);
  const size_t slash = s.find('/');
  std::string_view hostport = s.substr(0, slash);
  ep->path = slash == std::string_view::npos ? "/metrics" : std::string(s.substr(slash));
  const size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    ep->host = std::string(hostport);
    ep->port = 80;
  } else {
    ep->host = std::string(hostport.substr(0, colon));
    ep->port = std::atoi(std::string(hostport.substr(colon + 1)).c_str());
  }
  return !ep->host.empty() && ep->port > 0;
}

}  // namespace

int main(int argc, char** argv) {
  vigie::bench::StopSignals stop;

  std::string commands = "tcp://127.0.0.1:7002";
  std::string alerts = "tcp://127.0.0.1:7003";
  std::string metrics_url = "http://127.0.0.1:9464/metrics";
  double duration = 0;
  bool plain = false;
  CLI::App app{"vigie-watch: live view of a running vigie (outputs and /metrics)"};
  app.add_option("--commands", commands, "commands PUB socket to subscribe to")->capture_default_str();
  app.add_option("--alerts", alerts, "alerts PUB socket to subscribe to")->capture_default_str();
  app.add_option("--metrics", metrics_url, "the daemon's /metrics URL")->capture_default_str();
  app.add_option("--duration", duration, "seconds to run (0 = until SIGINT/SIGTERM)")->capture_default_str();
  app.add_flag("--plain", plain, "never clear the screen, even on a terminal");
  CLI11_PARSE(app, argc, argv);

  Endpoint ep;
  if (!ParseUrl(metrics_url, &ep)) {
    std::fprintf(stderr, "vigie-watch: --metrics must look like http://127.0.0.1:9464/metrics\n");
    return 2;
  }
  const bool tty = !plain && isatty(STDOUT_FILENO);

  zmq::context_t ctx(1);
  zmq::socket_t cmd_sock(ctx, zmq::socket_type::sub), alert_sock(ctx, zmq::socket_type::sub);
  try {
    for (auto* s : {&cmd_sock, &alert_sock}) {
      s->set(zmq::sockopt::subscribe, "");
      s->set(zmq::sockopt::rcvhwm, 100000);
      s->set(zmq::sockopt::linger, 0);
    }
    cmd_sock.connect(commands);
    alert_sock.connect(alerts);
  } catch (const zmq::error_t& e) {
    std::fprintf(stderr, "vigie-watch: cannot connect: %s\n", e.what());
    return 2;
  }

  httplib::Client http(ep.host, ep.port);
  http.set_connection_timeout(0, 300000);
  http.set_read_timeout(1, 0);

  std::deque<std::string> last;
  uint64_t n_cmd = 0, n_alert = 0, n_cmd_prev = 0, n_alert_prev = 0, undecodable = 0;
  std::map<std::string, double> prev;
  double prev_t = 0;
  const double t0 = vigie::bench::SteadySeconds();
  double next_tick = t0;
  vigie::rules::Output out;
  zmq::message_t topic, payload;

  while (!stop.Pending()) {
    const double now = vigie::bench::SteadySeconds();
    if (duration > 0 && now - t0 >= duration) break;
    if (now >= next_tick) {
      next_tick = now + 1.0;
      std::map<std::string, double> m;
      bool up = false;
      if (auto res = http.Get(ep.path.c_str()); res && res->status == 200) {
        m = ParseMetrics(res->body);
        up = true;
      }
      auto rate = [&](const char* name) {
        if (prev.empty() || !m.count(name) || now <= prev_t) return 0.0;
        return (m[name] - prev[name]) / (now - prev_t);
      };
      std::string screen;
      char buf[512];
      if (tty) screen += "\x1b[H\x1b[2J";
      std::snprintf(buf, sizeof buf, "vigie-watch  metrics: %s  commands: %s  alerts: %s\n",
                    metrics_url.c_str(), commands.c_str(), alerts.c_str());
      screen += buf;
      if (!up) {
        screen += "  daemon not answering on /metrics (yet)\n";
      } else {
        // received: events in (decoded, valid); processed counts one per shard that needed the
        // event (so it can exceed received when rules group by different fields).
        std::snprintf(buf, sizeof buf,
                      "  events/s in %9.0f   processed/s %9.0f   received %.0f   rejected %.0f   "
                      "activations/s %6.0f\n",
                      rate("vigie_events_received_total"), rate("vigie_events_processed_total"),
                      m["vigie_events_received_total"], m["vigie_events_rejected_total"],
                      rate("vigie_rule_activations_total"));
        screen += buf;
        std::snprintf(buf, sizeof buf,
                      "  commands/s %5.0f (total %.0f sent)   alerts/s %5.0f (total %.0f sent)   "
                      "queue depth %.0f   RSS %.1f MiB   groups %.0f\n",
                      rate("vigie_commands_sent_total"), m["vigie_commands_sent_total"],
                      rate("vigie_alerts_sent_total"), m["vigie_alerts_sent_total"],
                      m["vigie_queue_depth"], m["process_resident_memory_bytes"] / 1048576.0,
                      m["vigie_state_groups"]);
        screen += buf;
      }
      const double dt = prev_t > 0 ? now - prev_t : 1.0;
      std::snprintf(buf, sizeof buf,
                    "  received here: commands %llu (%.0f/s), alerts %llu (%.0f/s)%s\n",
                    static_cast<unsigned long long>(n_cmd), (n_cmd - n_cmd_prev) / dt,
                    static_cast<unsigned long long>(n_alert), (n_alert - n_alert_prev) / dt,
                    undecodable ? (", undecodable " + std::to_string(undecodable)).c_str() : "");
      screen += buf;
      screen += "  last outputs:\n";
      for (const auto& l : last) screen += "    " + l + "\n";
      if (!tty) screen += "\n";
      std::fwrite(screen.data(), 1, screen.size(), stdout);
      std::fflush(stdout);
      prev = std::move(m);
      prev_t = now;
      n_cmd_prev = n_cmd;
      n_alert_prev = n_alert;
    }

    zmq::pollitem_t items[] = {{cmd_sock.handle(), 0, ZMQ_POLLIN, 0},
                               {alert_sock.handle(), 0, ZMQ_POLLIN, 0}};
    const auto wait = std::chrono::milliseconds(
        std::max<long>(1, std::min<long>(200, static_cast<long>((next_tick - now) * 1000))));
    try {
      zmq::poll(items, 2, wait);
    } catch (const zmq::error_t&) {
      continue;  // EINTR
    }
    for (int i = 0; i < 2; ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      zmq::socket_t& s = i == 0 ? cmd_sock : alert_sock;
      for (int k = 0; k < 1000; ++k) {  // drain, bounded, so the screen keeps its pace
        if (!s.recv(topic, zmq::recv_flags::dontwait)) break;
        if (!topic.more()) continue;  // not our framing
        if (!s.recv(payload, zmq::recv_flags::none)) break;
        std::string_view body(static_cast<const char*>(payload.data()), payload.size());
        const bool is_fb = body.size() >= 8 && body.substr(4, 4) == "VGOU";
        const bool ok = is_fb ? vigie::codec::DecodeOutputFlatbuffers(body, &out)
                              : vigie::codec::DecodeOutputJson(body, &out);
        if (!ok) {
          ++undecodable;
          continue;
        }
        (out.type == vigie::rules::OutputType::kCommand ? n_cmd : n_alert)++;
        last.push_back(FormatOutput(out));
        if (last.size() > 5) last.pop_front();
      }
    }
  }
  return 0;
}
