// vigie-engine-bench: what one event costs the rules library for a given rule set, with no
// daemon, no sockets and no threads: the rule set is compiled, --events events of the city
// workload (bench/city) are generated in memory, then each stage runs over them, cycling, for
// --seconds:
//
//   match kind     RuleSet::Match(kind): every rule of the event's kind (the lookup before the
//                  rule index)
//   match index    RuleSet::Match(event): the rule index (rules/index.h)
//   where kind     Match(kind), then `where` evaluated on each of those rules
//   where index    Match(event), then `where` evaluated on each candidate: the same rules pass
//                  (checked on every event of the first pass; exits 1 otherwise)
//   process        Engine::Process, the whole evaluator (groups, windows, timers, outputs) as
//                  built: whichever lookup the engine uses. After a warm-up of one pass over the
//                  events, or --warmup-events of them cycling (at most --warmup seconds), so
//                  that it measures a steady state
//
// The process stage also reports the engine's memory: resident set size (/proc/self/statm) just
// before the engine is created (the events are built by then) and after the stage, and that
// difference per group.
//
// Event time advances by 1000 / --rate ms per event (virtual time: windows fill and expire as
// in a city sending --rate events/s). Prints a table on stderr and one JSON line on stdout.
// Reads rules/rule.h (the compiled form, private to rules/) on purpose: it measures its parts.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "bench/city/city.h"
#include "rules/engine.h"
#include "rules/event.h"
#include "rules/expr.h"
#include "rules/loader.h"
#include "rules/output.h"
#include "rules/rule.h"
#include "rules/timezone.h"

namespace {

namespace vr = vigie::rules;
using Clock = std::chrono::steady_clock;

// Resident set size of this process in bytes (0 if /proc is unreadable).
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

class CountingSink final : public vr::OutputSink {
 public:
  void Emit(vr::Output&&) override { ++count; }
  uint64_t count = 0;
};

struct Stage {
  const char* name;
  double ns_per_event = 0;
  uint64_t events = 0;
  double per_event = 0;  // rules returned (match) or rules passing where (where), outputs (process)
};

// Runs body(i) over events i = 0, 1, ... (cycling through n) until `seconds` have passed; checks
// the clock every 1024 events. body returns a count (rules, passes, outputs) to average.
template <typename F>
Stage Run(const char* name, size_t n, double seconds, F&& body) {
  Stage s{name};
  uint64_t total = 0;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(seconds);
  uint64_t i = 0;
  while (true) {
    for (int k = 0; k < 1024; ++k, ++i) total += body(i % n, i);
    if (Clock::now() >= deadline) break;
  }
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  s.events = i;
  s.ns_per_event = dt * 1e9 / static_cast<double>(i);
  s.per_event = static_cast<double>(total) / static_cast<double>(i);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vigie-engine-bench: the rules library's cost per event for one rule set"};
  std::string rules_file;
  int devices = 100000;
  int events = 100000;
  double seconds = 2;
  double warmup = 5;
  double rate = 20000;
  uint64_t seed = 42;
  std::string only;
  bool no_check = false;
  app.add_option("rules", rules_file, "rule file (YAML), e.g. from bench/rulegen/rulegen.py")
      ->required();
  app.add_option("--devices", devices, "devices in the city (as vigie-load)")
      ->capture_default_str();
  app.add_option("--events", events, "distinct events generated in memory")->capture_default_str();
  app.add_option("--seconds", seconds, "seconds per stage")->capture_default_str();
  app.add_option("--warmup", warmup,
                 "at most this many seconds of Engine::Process before its stage")
      ->capture_default_str();
  size_t warmup_events = 0;
  app.add_option("--warmup-events", warmup_events,
                 "events of Engine::Process before its stage, cycling through the --events "
                 "(default: one pass). Windows fill with virtual time: at a million devices one "
                 "pass (100 s at 20 000 events/s) leaves them filling during the stage");
  app.add_option("--rate", rate, "events per second of virtual time")->capture_default_str();
  app.add_option("--seed", seed, "city seed")->capture_default_str();
  app.add_option("--only", only,
                 "run only these stages (comma-separated: match_kind, match_index, where_kind, "
                 "where_index, process)");
  app.add_flag("--no-check", no_check, "skip the check that the index keeps what passes");
  std::string lookahead = "auto";
  app.add_option("--lookahead", lookahead,
                 "Engine::Prepare's lookahead: auto (the engine decides, as in the daemon), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (events < 1 || seconds <= 0 || rate <= 0 || warmup < 0) {
    std::fprintf(stderr,
                 "vigie-engine-bench: --events, --seconds, --rate must be positive, --warmup not "
                 "negative\n");
    return 2;
  }

  std::ifstream in(rules_file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "vigie-engine-bench: cannot read %s\n", rules_file.c_str());
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::vector<vr::LoadError> errors;
  const auto c0 = Clock::now();
  std::shared_ptr<const vr::RuleSet> rs = vr::CompileRules({{rules_file, text.str()}}, &errors);
  const double load_s = std::chrono::duration<double>(Clock::now() - c0).count();
  if (!rs) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    return 2;
  }

  vigie::bench::CityOptions copts;
  copts.devices = devices;
  copts.seed = seed;
  vigie::bench::City city(copts);
  const int64_t t0 = 1795726800000;  // 2026-11-26T21:00:00Z
  const double step_ms = 1000.0 / rate;
  std::vector<vr::Event> evs(static_cast<size_t>(events));
  for (size_t i = 0; i < evs.size(); ++i)
    city.Next(t0 + static_cast<int64_t>(static_cast<double>(i) * step_ms), &evs[i]);
  const size_t n = evs.size();
  std::fprintf(stderr,
               "vigie-engine-bench: %s: %zu rules (compiled in %.2f s), %zu events of a city of %d "
               "devices, %.0f events/s of virtual time, %.1f s per stage\n",
               rules_file.c_str(), rs->rules.size(), load_s, n, devices, rate, seconds);

  std::vector<uint32_t> matched;
  matched.reserve(rs->rules.size());
  std::vector<uint32_t> matched2;
  matched2.reserve(rs->rules.size());
  vr::EvalScratch scratch;
  auto passes = [&](const std::vector<uint32_t>& idx, const vr::Event& ev) {
    vr::EvalContext ctx;
    ctx.event = &ev;
    ctx.scratch = &scratch;
    uint64_t pass = 0;
    for (uint32_t r : idx) {
      const vr::Rule& rule = rs->rules[r];
      if (!rule.where) {
        ++pass;
        continue;
      }
      scratch.Reset();
      ctx.errors = 0;
      pass += vr::EvalCondition(*rule.where, ctx) ? 1 : 0;
    }
    return pass;
  };

  // The index returns a superset of what passes: check on the events (one pass, or as many as
  // --seconds allows: with a kind-only lookup 10,000 rules take milliseconds per event).
  const auto check_end = Clock::now() + std::chrono::duration<double>(seconds);
  size_t checked = 0;
  for (size_t i = 0; !no_check && i < n && (i % 256 != 0 || Clock::now() < check_end);
       ++i, ++checked) {
    rs->Match(std::string_view(evs[i].kind), &matched);
    rs->Match(evs[i], &matched2);
    if (passes(matched, evs[i]) != passes(matched2, evs[i])) {
      std::fprintf(stderr, "vigie-engine-bench: event %zu (%s): the index lost a rule\n", i,
                   evs[i].kind.c_str());
      return 1;
    }
  }

  std::fprintf(stderr, "  the index kept every rule that passes on the %zu events checked\n",
               checked);

  auto want = [&](const char* stage) {
    return only.empty() ||
           ("," + only + ",").find(std::string(",") + stage + ",") != std::string::npos;
  };
  std::vector<Stage> stages;
  if (want("match_kind"))
    stages.push_back(Run("match kind", n, seconds, [&](size_t i, uint64_t) {
      rs->Match(std::string_view(evs[i].kind), &matched);
      return matched.size();
    }));
  if (want("match_index"))
    stages.push_back(Run("match index", n, seconds, [&](size_t i, uint64_t) {
      rs->Match(evs[i], &matched);
      return matched.size();
    }));
  if (want("where_kind"))
    stages.push_back(Run("where kind", n, seconds, [&](size_t i, uint64_t) {
      rs->Match(std::string_view(evs[i].kind), &matched);
      return passes(matched, evs[i]);
    }));
  if (want("where_index"))
    stages.push_back(Run("where index", n, seconds, [&](size_t i, uint64_t) {
      rs->Match(evs[i], &matched);
      return passes(matched, evs[i]);
    }));

  size_t groups = 0, warmed = 0, rss_before = 0, rss_after = 0;
  const bool no_process = !want("process");
  if (!no_process) {
    rss_before = ResidentBytes();
    vr::FixedOffsetZone tz(3600);
    vr::EngineOptions eopts;
    eopts.tz = &tz;
    eopts.lookahead = lookahead == "on"    ? vr::EngineOptions::Lookahead::kOn
                      : lookahead == "off" ? vr::EngineOptions::Lookahead::kOff
                                           : vr::EngineOptions::Lookahead::kAuto;
    vr::Engine engine(rs, eopts);
    CountingSink sink;
    // Warm-up: one pass over the events, or --warmup-events (at most --warmup seconds), so
    // that groups exist and windows hold events as in a steady state: the stage then measures
    // what follows.
    const auto warm_end = Clock::now() + std::chrono::duration<double>(warmup);
    const size_t warm_target = warmup_events > 0 ? warmup_events : n;
    size_t warm = 0;
    for (; warm < warm_target && (warm % 256 != 0 || Clock::now() < warm_end); ++warm)
      engine.Process(evs[warm % n], t0 + static_cast<int64_t>(static_cast<double>(warm) * step_ms),
                     sink);
    stages.push_back(Run("process", n, seconds, [&](size_t i, uint64_t k) {
      const uint64_t before = sink.count;
      const size_t j = (i + warm) % n;  // go on where the warm-up stopped
      // As a shard reads its batch (daemon/pipeline/shard.cc): the event two ahead of the one
      // prepared, then what the next one points at, so that the stage measures the engine, not
      // the first touch of an event that is not in cache.
      // And as a shard hints its engine (Engine::Prepare): kLookahead events ahead.
      constexpr size_t kAhead = vr::Engine::kLookahead;
      if (k == 0)
        for (size_t a = 0; a < kAhead; ++a) engine.Prepare(evs[(j + a) % n]);
      vr::PrefetchEvent(evs[(j + kAhead + 2) % n]);
      vr::PrefetchEventData(evs[(j + kAhead + 1) % n]);
      engine.Prepare(evs[(j + kAhead) % n]);
      engine.Process(evs[j], t0 + static_cast<int64_t>(static_cast<double>(warm + k) * step_ms),
                     sink);
      return sink.count - before;
    }));
    engine.DropPrepared();
    groups = engine.group_count();
    warmed = warm;
    rss_after = ResidentBytes();
  }
  const double engine_mib = static_cast<double>(rss_after - std::min(rss_after, rss_before)) /
                            (1024.0 * 1024.0);
  const double bytes_per_group =
      groups == 0 ? 0.0 : static_cast<double>(rss_after - std::min(rss_after, rss_before)) /
                              static_cast<double>(groups);

  std::fprintf(stderr, "  %-12s %12s %14s %12s\n", "stage", "ns/event", "per event", "events");
  for (const Stage& s : stages) {
    const char* what = s.name[0] == 'm' ? "rules" : s.name[0] == 'w' ? "pass" : "outputs";
    std::fprintf(stderr, "  %-12s %12.1f %8.2f %-5s %12" PRIu64 "\n", s.name, s.ns_per_event,
                 s.per_event, what, s.events);
  }
  if (!no_process)
    std::fprintf(stderr,
                 "  process: %zu events of warm-up, then %zu groups at the end; engine RSS "
                 "%.1f MiB (%.0f bytes/group), process RSS %.1f MiB\n",
                 warmed, groups, engine_mib, bytes_per_group,
                 static_cast<double>(rss_after) / (1024.0 * 1024.0));

  std::printf(
      "{\"tool\": \"vigie-engine-bench\", \"rules_file\": \"%s\", \"rules\": %zu, "
      "\"events\": %zu, \"devices\": %d",
      rules_file.c_str(), rs->rules.size(), n, devices);
  for (const Stage& s : stages) {
    std::string key = s.name;
    std::replace(key.begin(), key.end(), ' ', '_');
    std::printf(", \"%s_ns\": %.1f, \"%s_per_event\": %.3f", key.c_str(), s.ns_per_event,
                key.c_str(), s.per_event);
  }
  std::printf(", \"checked\": %zu", checked);
  if (!no_process)
    std::printf(", \"warmup_events\": %zu, \"groups\": %zu, \"engine_rss_bytes\": %zu, "
                "\"bytes_per_group\": %.0f, \"rss_bytes\": %zu",
                warmed, groups, rss_after - std::min(rss_after, rss_before), bytes_per_group,
                rss_after);
  std::printf("}\n");
  return 0;
}
