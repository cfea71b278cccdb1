// vigie-state-bench: what N groups of durable state cost, measured on the real
// rules::Engine and the real RocksStateStore, driven the way the daemon drives
// them (one engine = one shard):
//
//   1. build   compile one rule, feed K events for each of N devices through
//   Engine::Process
//              (event time increasing, spread over 5 minutes of one 10-minute
//              period, so no window expires and no tumbling period closes
//              during the feed): events/s;
//   2. checkpoint  Engine::TakeDirty into a StateDelta (serialization), then
//              RocksStateStore::Write of that delta (one batch, as a shard's
//              checkpoint is written, or batches of --batch-puts puts): time of
//              each part, bytes (keys + values);
//   3. restart-to-ready  close the store, reopen it (RocksStateStore::Open:
//   includes the WAL
//              replay, since nothing forces a flush), fresh Engine,
//              Scan(Engine::StatePrefix()) feeding Engine::Restore, then
//              FinishRestore(now = last event + 1 s): time of each part; exits
//              1 unless every entry was taken and exactly N groups came back;
//   4. peak RSS (getrusage ru_maxrss) at the end, and the resident size after
//   each phase.
//
// Prints a human table on stderr and one JSON line on stdout. Single-threaded;
// the store lives in --dir (a fresh temporary directory by default, removed at
// the end unless --keep).
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/state/store.h"
#include "rules/engine.h"
#include "rules/event.h"
#include "rules/loader.h"
#include "rules/output.h"
#include "rules/timezone.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Resident set size now, from /proc/self/statm (bytes); 0 if unreadable.
uint64_t CurrentRssBytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux: kilobytes
}

class CountingSink final : public vigie::rules::OutputSink {
 public:
  void Emit(vigie::rules::Output &&) override { ++count; }
  uint64_t count = 0;
};

// The rule of each kind: one group per device, nothing that fires during the
// bench.
std::string RuleText(const std::string &kind) {
  std::string head =
      "rules:\n"
      "  - name: bench-" +
      kind +
      "\n"
      "    on: traffic\n"
      "    group_by: device\n";
  const std::string then =
      "    then:\n"
      "      - alert: {severity: info, summary: \"{device} busy\"}\n";
  if (kind == "sliding") {
    return head +
           "    window: {sliding: 10m}\n"
           "    let:\n"
           "      n: count()\n"
           "    when: n > 100\n" +
           then;
  }
  if (kind == "tumbling") {
    return head +
           "    window: {tumbling: 10m}\n"
           "    let:\n"
           "      n: count()\n"
           "    when: n > 100\n" +
           then;
  }
  if (kind == "absence") {
    return head + "    absent_for: 1h\n" + then;
  }
  return head + "    when: speed > 1000\n" + then;  // stateless
}

double MiB(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char **argv) {
  namespace vr = vigie::rules;
  namespace vd = vigie::daemon;

  CLI::App app{"vigie-state-bench: checkpoint and restart-to-ready cost of N groups"};
  int64_t groups = 100000;
  std::string rule_kind = "sliding";
  int events_per_group = 3;
  std::string dir;
  bool keep = false;
  int64_t batch_puts = 0;
  app.add_option("--groups", groups, "number of groups (devices)")->check(CLI::PositiveNumber);
  app.add_option("--rule", rule_kind, "rule kind")
      ->check(CLI::IsMember({"sliding", "stateless", "absence", "tumbling"}));
  app.add_option("--events-per-group", events_per_group, "events fed per group")
      ->check(CLI::PositiveNumber);
  app.add_option("--dir", dir, "RocksDB directory (default: a fresh temporary directory)");
  app.add_flag("--keep", keep, "keep the directory at the end");
  app.add_option("--batch-puts", batch_puts,
                 "write the checkpoint in batches of this many puts (0 = one batch)")
      ->check(CLI::NonNegativeNumber);
  vd::StoreOptions store_opts;
  int64_t write_mib_per_s = store_opts.background_write_bytes_per_s >> 20;
  app.add_option("--state-write-mib-per-s", write_mib_per_s,
                 "RocksDB's flushes and compactions paced at this (the daemon's "
                 "state_write_mib_per_s, default 64; 0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  store_opts.background_write_bytes_per_s = write_mib_per_s << 20;

  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "vigie-state-bench.XXXXXX");
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      return 2;
    }
    dir = tmpl;
  } else if (std::filesystem::exists(dir) && !std::filesystem::is_empty(dir)) {
    std::fprintf(stderr, "--dir %s is not empty: refusing to measure on old data\n", dir.c_str());
    return 2;
  }
  auto cleanup = [&] {
    if (keep) return;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  };

  // ---- compile
  std::vector<vr::LoadError> errors;
  auto rules = vr::CompileRules({{"bench.yaml", RuleText(rule_kind)}}, &errors);
  if (!rules) {
    for (const auto &e : errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    cleanup();
    return 2;
  }
  vr::FixedOffsetZone utc(0);
  vr::EngineOptions eopts;
  eopts.tz = &utc;

  // ---- 1. build N groups
  // Device names prepared up front so the timed loop measures the engine, not
  // sprintf.
  std::vector<std::string> devices(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "dev-%08" PRId64, g);
    devices[static_cast<size_t>(g)] = buf;
  }
  // 1 minute into a 10-minute period (epoch-aligned), events over the next 5
  // minutes.
  const int64_t period_ms = 600000;
  const int64_t t0 = (1700000000000LL / period_ms) * period_ms + 60000;
  const int64_t span_ms = 300000;
  const uint64_t total_events = static_cast<uint64_t>(groups) * events_per_group;

  CountingSink sink;
  const uint64_t rss_start = CurrentRssBytes();
  auto engine = std::make_unique<vr::Engine>(rules, eopts);
  vr::Event ev;
  ev.kind = "traffic";
  ev.has_ts = true;
  uint64_t i = 0;
  int64_t last_ts = t0;
  const auto feed_start = Clock::now();
  for (int k = 0; k < events_per_group; ++k) {
    for (int64_t g = 0; g < groups; ++g, ++i) {
      const int64_t ts =
          t0 + static_cast<int64_t>((i * static_cast<uint64_t>(span_ms)) / total_events);
      ev.ts_ms = ts;
      ev.Set("device", vr::Value::String(devices[static_cast<size_t>(g)]));
      ev.Set("speed", vr::Value::Number(static_cast<double>(30 + (i % 50))));
      engine->Process(ev, ts, sink);
      last_ts = ts;
    }
  }
  const double feed_s = SecondsSince(feed_start);
  const uint64_t rss_after_feed = CurrentRssBytes();
  const size_t groups_built = engine->group_count();

  // ---- 2. checkpoint
  std::string err;
  auto store = vd::RocksStateStore::Open(dir, store_opts, &err);
  if (!store) {
    std::fprintf(stderr, "%s\n", err.c_str());
    cleanup();
    return 2;
  }
  vr::StateDelta delta;
  auto t = Clock::now();
  engine->TakeDirty(&delta);
  const double serialize_s = SecondsSince(t);
  uint64_t key_bytes = 0, value_bytes = 0;
  for (const auto &[k, v] : delta.puts) {
    key_bytes += k.size();
    value_bytes += v.size();
  }
  const size_t puts = delta.puts.size();
  const uint64_t rss_after_serialize = CurrentRssBytes();

  size_t batches = 0;
  t = Clock::now();
  if (batch_puts <= 0 || static_cast<size_t>(batch_puts) >= delta.puts.size()) {
    batches = 1;
    if (!store->Write(delta, &err)) {
      std::fprintf(stderr, "write: %s\n", err.c_str());
      cleanup();
      return 2;
    }
  } else {
    vr::StateDelta part;
    for (size_t b = 0; b < delta.puts.size(); b += static_cast<size_t>(batch_puts)) {
      part.clear();
      const size_t e = std::min(delta.puts.size(), b + static_cast<size_t>(batch_puts));
      for (size_t j = b; j < e; ++j) part.puts.push_back(delta.puts[j]);
      ++batches;
      if (!store->Write(part, &err)) {
        std::fprintf(stderr, "write: %s\n", err.c_str());
        cleanup();
        return 2;
      }
    }
  }
  const double write_s = SecondsSince(t);
  delta = vr::StateDelta();  // frees the buffers: the RSS below is without them

  // A second TakeDirty right after must be empty (nothing changed): its cost is
  // the idle checkpoint of a shard with N clean groups.
  t = Clock::now();
  engine->TakeDirty(&delta);
  const double idle_take_s = SecondsSince(t);
  const size_t idle_puts = delta.puts.size();
  delta.clear();

  // ---- 3. restart to ready
  engine.reset();
  t = Clock::now();
  store.reset();
  const double close_s = SecondsSince(t);

  const auto restart_start = Clock::now();
  store = vd::RocksStateStore::Open(dir, store_opts, &err);
  if (!store) {
    std::fprintf(stderr, "reopen: %s\n", err.c_str());
    cleanup();
    return 2;
  }
  const double open_s = SecondsSince(restart_start);
  t = Clock::now();
  auto restored_engine = std::make_unique<vr::Engine>(rules, eopts);
  uint64_t restored = 0, ignored = 0;
  const bool scan_ok = store->Scan(
      vr::Engine::StatePrefix(),
      [&](std::string_view key, std::string_view value) {
        if (restored_engine->Restore(key, value)) {
          ++restored;
        } else {
          ++ignored;
        }
        return true;
      },
      &err);
  const double scan_restore_s = SecondsSince(t);
  if (!scan_ok) {
    std::fprintf(stderr, "scan: %s\n", err.c_str());
    cleanup();
    return 2;
  }
  t = Clock::now();
  CountingSink restore_sink;
  restored_engine->FinishRestore(last_ts + 1000, restore_sink);
  const double finish_s = SecondsSince(t);
  const double restart_s = SecondsSince(restart_start);
  const size_t groups_restored = restored_engine->group_count();
  // The store's share of scan + restore: the same scan again with nothing done
  // per entry (warm: block cache and page cache already hold what the first
  // scan read).
  t = Clock::now();
  uint64_t scanned = 0;
  store->Scan(
      vr::Engine::StatePrefix(),
      [&](std::string_view, std::string_view) {
        ++scanned;
        return true;
      },
      &err);
  const double scan_only_s = SecondsSince(t);
  const uint64_t store_bytes = store->ApproximateBytes();
  const uint64_t rss_after_restore = CurrentRssBytes();
  const uint64_t peak_rss = PeakRssBytes();

  // Every entry is taken (`restored` counts store entries: packs of up to 32 groups since state
  // format 3), and every group comes back.
  const bool ok = restored == puts && ignored == 0 &&
                  groups_restored == static_cast<size_t>(groups) &&
                  groups_built == static_cast<size_t>(groups);

  // ---- report
  const double total_bytes = static_cast<double>(key_bytes + value_bytes);
  std::fprintf(
      stderr,
      "vigie-state-bench  rule=%s groups=%" PRId64
      " events/group=%d dir=%s\n"
      "  build     %10" PRIu64 " events in %8.3f s  = %12.0f events/s  (%zu groups, %" PRIu64
      " outputs)\n"
      "  checkpoint serialize (TakeDirty)  %8.3f s  %zu puts\n"
      "             write (RocksDB, %zu batch%s) %8.3f s\n"
      "             total                 %8.3f s\n"
      "             bytes  keys %.1f MiB + values %.1f MiB = %.1f MiB, %.1f "
      "B/group "
      "(key %.1f + value %.1f)\n"
      "             idle TakeDirty        %8.3f s  (%zu puts)\n"
      "  close store                      %8.3f s\n"
      "  restart    open (incl. WAL replay) %8.3f s\n"
      "             scan + restore        %8.3f s  restored %" PRIu64 ", ignored %" PRIu64
      "\n"
      "             (scan alone, warm     %8.3f s)\n"
      "             FinishRestore         %8.3f s  (%" PRIu64
      " outputs)\n"
      "             total (to ready)      %8.3f s  -> %zu groups\n"
      "  RSS   start %.1f MiB, after feed %.1f MiB, after serialize %.1f MiB, "
      "after "
      "restore %.1f MiB, peak %.1f MiB; store ~%.1f MiB\n"
      "  %s\n",
      rule_kind.c_str(), groups, events_per_group, dir.c_str(), total_events, feed_s,
      total_events / feed_s, groups_built, sink.count, serialize_s, puts, batches,
      batches == 1 ? "" : "es", write_s, serialize_s + write_s, MiB(key_bytes), MiB(value_bytes),
      MiB(key_bytes + value_bytes), total_bytes / groups, static_cast<double>(key_bytes) / groups,
      static_cast<double>(value_bytes) / groups, idle_take_s, idle_puts, close_s, open_s,
      scan_restore_s, restored, ignored, scan_only_s, finish_s, restore_sink.count, restart_s,
      groups_restored, MiB(rss_start), MiB(rss_after_feed), MiB(rss_after_serialize),
      MiB(rss_after_restore), MiB(peak_rss), MiB(store_bytes),
      ok ? "OK: every group restored" : "FAIL: restored group count differs from N");

  std::printf("{\"tool\":\"vigie-state-bench\",\"rule\":\"%s\",\"groups\":%" PRId64
              ",\"events_per_group\":%d,\"events\":%" PRIu64
              ",\"feed_s\":%.6f,\"feed_eps\":%.0f,"
              "\"groups_built\":%zu,\"puts\":%zu,\"key_bytes\":%" PRIu64 ",\"value_bytes\":%" PRIu64
              ",\"bytes_per_group\":%.2f,\"serialize_s\":%."
              "6f,\"write_s\":%.6f,\"write_batches\":%zu,"
              "\"checkpoint_s\":%.6f,\"idle_take_dirty_s\":%.6f,\"close_s\":%.6f,"
              "\"open_s\":%.6f,"
              "\"scan_restore_s\":%.6f,\"scan_only_warm_s\":%.6f,\"finish_restore_s\":%"
              ".6f,\"restart_s\":%.6f,\"restored\":%" PRIu64 ",\"ignored\":%" PRIu64
              ",\"groups_restored\":%zu,\"rss_after_feed_bytes\":%" PRIu64
              ",\"rss_after_restore_bytes\":%" PRIu64 ",\"peak_rss_bytes\":%" PRIu64
              ",\"store_bytes\":%" PRIu64 ",\"ok\":%s}\n",
              rule_kind.c_str(), groups, events_per_group, total_events, feed_s,
              total_events / feed_s, groups_built, puts, key_bytes, value_bytes,
              total_bytes / groups, serialize_s, write_s, batches, serialize_s + write_s,
              idle_take_s, close_s, open_s, scan_restore_s, scan_only_s, finish_s, restart_s,
              restored, ignored, groups_restored, rss_after_feed, rss_after_restore, peak_rss,
              store_bytes, ok ? "true" : "false");
  std::fflush(stdout);

  restored_engine.reset();
  store.reset();
  cleanup();
  return ok ? 0 : 1;
}
