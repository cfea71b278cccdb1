// The composition root: the only file that knows every part of the daemon.
//
// Start order: config -> time zone -> rules -> HTTP (healthz at once, readyz 503) -> state store
// and seq -> checkpointer -> sinks -> pipeline (restore, then start) -> sources -> ready.
// Stop order is the reverse: sources -> pipeline (drain, final checkpoint) -> checkpointer flush
// -> seq close -> sinks -> HTTP.
#include "daemon/app.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "daemon/config/config.h"
#include "daemon/http/admin_server.h"
#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/pipeline.h"
#include "daemon/state/checkpointer.h"
#include "daemon/state/seq.h"
#include "daemon/state/store.h"
#include "daemon/util/log.h"
#include "daemon/util/malloc_tuning.h"
#include "daemon/util/rules_files.h"
#include "daemon/util/tz.h"
#include "plugins/api/factory.h"
#include "plugins/registry.h"
#include "rules/loader.h"
#include "rules/ruleset_api.h"

namespace vigie::daemon {
namespace {

constexpr const char* kComponent = "vigie";

plugins::Logger PluginLogger(Logger* log, std::string component) {
  return [log, component](plugins::LogLevel lvl, std::string_view msg) {
    LogLevel l = lvl == plugins::LogLevel::kDebug ? LogLevel::kDebug
               : lvl == plugins::LogLevel::kInfo  ? LogLevel::kInfo
               : lvl == plugins::LogLevel::kWarn  ? LogLevel::kWarn
                                                  : LogLevel::kError;
    log->Log(l, component, msg);
  };
}

std::string Place(const Config& cfg, int line, int col) {
  if (line <= 0) return cfg.file;
  return cfg.file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Daemon {
 public:
  explicit Daemon(Logger* log) : log_(log) {}

  int Run(const std::string& config_path);

 private:
  bool LoadConfig(const std::string& path);
  std::shared_ptr<const rules::RuleSet> LoadRules(std::vector<rules::LoadError>* errors, size_t* files);
  ReloadResult Reload(const char* why);
  void Collect(MetricsWriter& w) const;
  int Shutdown(int code);

  Logger* log_;
  Config cfg_;
  std::unique_ptr<rules::TimeZone> tz_;
  SystemClock clock_;
  MetricsRegistry registry_;
  std::unique_ptr<AdminServer> http_;
  std::unique_ptr<RocksStateStore> store_;
  // Failure tests: VIGIE_FAULT_STATE_FILE=<path> makes every state write fail while <path>
  // exists (docs/operations.md, "Testing failure handling"). Null in normal runs.
  std::unique_ptr<FaultyStateStore> faulty_;
  std::thread fault_watch_;
  std::atomic<bool> fault_watch_stop_{false};
  StateStore* state_ = nullptr;  // store_, or faulty_ wrapping it
  SeqAllocator seq_;
  bool seq_open_ = false;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<plugins::Sink> commands_, alerts_;
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<std::unique_ptr<plugins::EventConsumer>> consumers_;
  std::vector<std::unique_ptr<plugins::Source>> sources_;

  std::atomic<bool> ready_{false};
  std::atomic<const char*> not_ready_reason_{"starting"};
  std::mutex reload_mu_;  // reloads come from SIGHUP and HTTP; one at a time
  std::atomic<int> rules_loaded_{0};
  std::atomic<int> last_reload_ok_{1};
  std::atomic<double> last_reload_time_{0};
  std::atomic<uint64_t> reloads_ok_{0}, reloads_failed_{0};
  double restore_seconds_ = 0;
  uint64_t restored_groups_ = 0;
};

bool Daemon::LoadConfig(const std::string& path) {
  std::vector<ConfigError> errors;
  bool ok;
  if (!path.empty()) {
    ok = LoadConfigFile(path, &cfg_, &errors);
  } else if (std::filesystem::exists("config/vigie.yaml")) {
    ok = LoadConfigFile("config/vigie.yaml", &cfg_, &errors);
  } else {
    ok = ParseConfig(DefaultConfigYaml(), "<embedded>", &cfg_, &errors);
  }
  for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
  if (!ok && errors.empty()) std::fprintf(stderr, "vigie: the configuration is not valid\n");
  return ok;
}

std::shared_ptr<const rules::RuleSet> Daemon::LoadRules(std::vector<rules::LoadError>* errors,
                                                        size_t* files) {
  std::vector<rules::RuleSource> sources;
  ReadRuleSources({cfg_.rules}, &sources, errors);
  *files = sources.size();
  if (!errors->empty()) return nullptr;
  return rules::CompileRules(sources, errors);
}

ReloadResult Daemon::Reload(const char* why) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  ReloadResult r;
  std::vector<rules::LoadError> errors;
  size_t files = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto rs = LoadRules(&errors, &files);
  if (!rs) {
    for (const auto& e : errors) r.body += e.ToString() + "\n";
    r.body += "reload failed: the previous rules stay in force\n";
    last_reload_ok_ = 0;
    reloads_failed_++;
    log_->Logf(LogLevel::kError, kComponent, "reload (%s) failed with %zu problem(s); previous rules kept", why,
               errors.size());
    for (const auto& e : errors) log_->Error(kComponent, e.ToString());
    return r;
  }
  // Summarize what happens to state: unchanged rules keep it, changed ones start fresh.
  auto old = pipeline_->rules();
  size_t kept = 0, changed = 0, added = 0, removed = 0;
  for (size_t i = 0; i < rules::RuleCount(*rs); ++i) {
    const auto& ni = rules::GetRuleInfo(*rs, i);
    bool found = false;
    for (size_t j = 0; j < rules::RuleCount(*old); ++j) {
      const auto& oi = rules::GetRuleInfo(*old, j);
      if (oi.name != ni.name) continue;
      found = true;
      (oi.fingerprint == ni.fingerprint ? kept : changed)++;
    }
    if (!found) added++;
  }
  removed = rules::RuleCount(*old) - kept - changed;
  bool acked = pipeline_->Reload(rs);
  rules_loaded_ = static_cast<int>(rules::RuleCount(*rs));
  last_reload_ok_ = 1;
  last_reload_time_ = NowSeconds();
  reloads_ok_++;
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "ok: %zu rules in %zu files (%zu unchanged kept their state, %zu changed start fresh, "
                "%zu new, %zu removed) in %.1f ms%s\n",
                rules::RuleCount(*rs), files, kept, changed, added, removed, ms,
                acked ? "" : " (some shards are still switching)");
  r.ok = true;
  r.body = buf;
  log_->Logf(LogLevel::kInfo, kComponent, "reload (%s): %s", why, buf);
  return r;
}

void Daemon::Collect(MetricsWriter& w) const {
  w.Gauge("vigie_rules_loaded", "Rules currently loaded.", {}, rules_loaded_.load());
  w.Gauge("vigie_config_last_reload_successful", "1 if the last rules reload succeeded (or none was tried), 0 if it failed.",
          {}, last_reload_ok_.load());
  w.Gauge("vigie_config_last_reload_success_timestamp_seconds", "Unix time of the last successful rules load (start-up or reload).", {},
          last_reload_time_.load());
  w.Counter("vigie_config_reloads_total", "Rules reloads by result.", {{"result", "success"}}, reloads_ok_.load());
  w.Counter("vigie_config_reloads_total", "Rules reloads by result.", {{"result", "failure"}}, reloads_failed_.load());
  w.Gauge("vigie_ready", "1 once rules are loaded and state is recovered.", {}, ready_.load() ? 1 : 0);
  w.Gauge("vigie_state_restore_seconds", "Time taken to recover state at start-up.", {}, restore_seconds_);
  w.Gauge("vigie_state_restored_groups", "Groups recovered from the state store at start-up.", {},
          static_cast<double>(restored_groups_));
  if (store_) w.Gauge("vigie_state_store_bytes", "Approximate size of the state store on disk.", {},
                      static_cast<double>(store_->ApproximateBytes()));
  if (store_) {
    // RocksDB holds checkpoint writes back when its flushes and compactions fall behind: first
    // slowed, then stopped. What the checkpointer then waits is in
    // vigie_checkpoint_duration_seconds; these say why, and how close the next stall is.
    const StateStore::WriteHealth h = store_->write_health();
    if (h.known) {
      w.Counter("vigie_state_write_stall_seconds_total",
                "Time checkpoint writes were held back by the state store (slowed or stopped).", {},
                static_cast<double>(h.stall_micros) * 1e-6);
      for (int c = 0; c < StateStore::WriteHealth::kCauses; ++c) {
        const char* cause = StateStore::WriteHealth::CauseName(c);
        w.Counter("vigie_state_write_stalls_total",
                  "Times the state store began holding writes back, by kind and cause.",
                  {{"kind", "slowdown"}, {"cause", cause}}, static_cast<double>(h.slowdowns[c]));
        w.Counter("vigie_state_write_stalls_total",
                  "Times the state store began holding writes back, by kind and cause.",
                  {{"kind", "stop"}, {"cause", cause}}, static_cast<double>(h.stops[c]));
      }
      w.Gauge("vigie_state_write_stopped", "1 while the state store stops writes.", {},
              h.stopped ? 1 : 0);
      w.Gauge("vigie_state_write_delayed_rate_bytes",
              "Bytes per second the state store holds writes to while it slows them; 0 when not.",
              {}, static_cast<double>(h.delayed_rate));
      w.Gauge("vigie_state_level0_files",
              "Files in the state store's level 0 (too many slow writes down, then stop them).", {},
              static_cast<double>(h.l0_files));
      w.Gauge("vigie_state_pending_compaction_bytes",
              "Bytes the state store's compactions are behind (too many slow writes down).", {},
              static_cast<double>(h.pending_compaction_bytes));
    }
  }
  // Sources: received per source; rejected per reason, summed over sources.
  uint64_t rejected[static_cast<int>(plugins::RejectReason::kCount_)] = {};
  for (const auto& s : sources_) {
    const auto& st = s->stats();
    w.Counter("vigie_events_received_total", "Events received (decoded and valid) per source.",
              {{"source", s->name()}}, st.events.load(std::memory_order_relaxed));
    w.Counter("vigie_messages_received_total", "Messages received per source.", {{"source", s->name()}},
              st.messages.load(std::memory_order_relaxed));
    w.Counter("vigie_source_bytes_total", "Bytes received per source.", {{"source", s->name()}},
              st.bytes.load(std::memory_order_relaxed));
    w.Counter("vigie_source_blocked_seconds_total",
              "Time a source spent waiting on full shard queues (backpressure).", {{"source", s->name()}},
              static_cast<double>(st.blocked_ns.load(std::memory_order_relaxed)) / 1e9);
    for (int r = 0; r < static_cast<int>(plugins::RejectReason::kCount_); ++r)
      rejected[r] += st.rejected[r].load(std::memory_order_relaxed);
  }
  for (int r = 0; r < static_cast<int>(plugins::RejectReason::kCount_); ++r)
    w.Counter("vigie_events_rejected_total", "Messages or events rejected, by reason.",
              {{"reason", plugins::RejectReasonName(static_cast<plugins::RejectReason>(r))}}, rejected[r]);
  for (const plugins::Sink* s : {commands_.get(), alerts_.get()}) {
    if (!s) continue;
    w.Counter("vigie_sink_sent_total", "Outputs sent per sink.", {{"sink", s->name()}},
              s->stats().sent.load(std::memory_order_relaxed));
    w.Counter("vigie_sink_dropped_total", "Outputs a sink could not send (high-water mark, timeout).",
              {{"sink", s->name()}}, s->stats().dropped.load(std::memory_order_relaxed));
  }
}

int Daemon::Shutdown(int code) {
  ready_ = false;
  not_ready_reason_ = "stopping";
  for (auto& s : sources_) s->Stop();
  if (pipeline_) pipeline_->Stop();  // drains every queued event, final checkpoint per shard
  if (checkpointer_) {
    if (!checkpointer_->Flush(std::chrono::steady_clock::now() + std::chrono::seconds(30)))
      log_->Error(kComponent, "final checkpoint not fully written within 30 s");
    checkpointer_->Stop();
  }
  if (seq_open_) {
    std::string err;
    if (!seq_.Close(&err)) log_->Error(kComponent, "closing seq: " + err);
  }
  if (commands_) commands_->Stop();
  if (alerts_) alerts_->Stop();
  if (http_) http_->Stop();
  pipeline_.reset();
  if (fault_watch_.joinable()) {
    fault_watch_stop_ = true;
    fault_watch_.join();
  }
  faulty_.reset();
  store_.reset();
  log_->Info(kComponent, code == 0 ? "stopped cleanly" : "stopped");
  return code;
}

int Daemon::Run(const std::string& config_path) {
  if (!LoadConfig(config_path)) return 1;
  LogLevel lvl;
  if (ParseLogLevel(cfg_.log_level, &lvl)) log_->set_level(lvl);
  std::string err;
  tz_ = LoadTimeZone(cfg_.timezone, &err);
  if (!tz_) {
    std::fprintf(stderr, "%s: timezone: %s\n", cfg_.file.c_str(), err.c_str());
    return 1;
  }
  std::vector<rules::LoadError> rerrors;
  size_t files = 0;
  auto rs = LoadRules(&rerrors, &files);
  if (!rs) {
    for (const auto& e : rerrors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    std::fprintf(stderr, "vigie: the rules do not load; not starting\n");
    return 1;
  }
  rules_loaded_ = static_cast<int>(rules::RuleCount(*rs));
  last_reload_time_ = NowSeconds();
  log_->Logf(LogLevel::kInfo, kComponent, "config %s; %zu rules in %zu files from %s", cfg_.file.c_str(),
             rules::RuleCount(*rs), files, cfg_.rules.c_str());

  // Metrics collectors: registered once; each reads its component if it exists.
  registry_.Add([this](MetricsWriter& w) { Collect(w); });
  registry_.Add([this](MetricsWriter& w) {
    if (pipeline_) pipeline_->Collect(w);
  });
  registry_.Add([this](MetricsWriter& w) {
    if (checkpointer_) checkpointer_->Collect(w);
  });
  registry_.Add([](MetricsWriter& w) { CollectProcessMetrics(w); });

  // HTTP first, so that /healthz answers and /readyz says 503 while state is recovered.
  if (!cfg_.http_listen.empty()) {
    AdminServerOptions ho;
    if (!SplitHostPort(cfg_.http_listen, &ho.host, &ho.port)) {
      std::fprintf(stderr, "%s: http.listen '%s' is not host:port\n",
                   Place(cfg_, cfg_.http_line, cfg_.http_col).c_str(), cfg_.http_listen.c_str());
      return 1;
    }
    AdminHandlers h;
    h.metrics = [this] { return registry_.Render(); };
    h.ready = [this](std::string* reason) {
      if (ready_) return true;
      *reason = not_ready_reason_.load();
      return false;
    };
    h.rules_json = [this] { return pipeline_ ? pipeline_->RulesJson() : std::string("[]"); };
    h.reload = [this] {
      if (!ready_) return ReloadResult{false, "not ready yet\n"};
      return Reload("POST /-/reload");
    };
    http_ = std::make_unique<AdminServer>(ho, h);
    if (!http_->Start(&err)) {
      std::fprintf(stderr, "%s: http.listen %s: %s\n", Place(cfg_, cfg_.http_line, cfg_.http_col).c_str(),
                   cfg_.http_listen.c_str(), err.c_str());
      return 1;
    }
    log_->Logf(LogLevel::kInfo, kComponent, "metrics and admin on http://%s:%d/metrics", ho.host.c_str(), http_->port());
  }

  // State.
  not_ready_reason_ = "recovering state";
  StoreOptions store_opts;
  store_opts.background_write_bytes_per_s = cfg_.state_write_mib_per_s << 20;
  store_ = RocksStateStore::Open(cfg_.state_dir, store_opts, &err);
  if (!store_) {
    std::fprintf(stderr, "%s: state_dir %s: %s\n", cfg_.file.c_str(), cfg_.state_dir.c_str(), err.c_str());
    return Shutdown(1);
  }
  if (const int64_t limit = store_->background_write_limit(); limit > 0) {
    log_->Logf(LogLevel::kInfo, kComponent, "state: RocksDB's flushes and compactions paced at %lld MiB/s",
               static_cast<long long>(limit >> 20));
  } else {
    log_->Info(kComponent, "state: RocksDB's flushes and compactions not paced (state_write_mib_per_s: 0)");
  }
  state_ = store_.get();
  if (const char* fault_file = std::getenv("VIGIE_FAULT_STATE_FILE"); fault_file && *fault_file) {
    faulty_ = std::make_unique<FaultyStateStore>(store_.get());
    state_ = faulty_.get();
    std::string path = fault_file;
    log_->Logf(LogLevel::kWarn, kComponent, "fault injection: state writes fail while %s exists", path.c_str());
    fault_watch_ = std::thread([this, path] {
      while (!fault_watch_stop_.load()) {
        faulty_->fail_writes = std::filesystem::exists(path);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  if (!seq_.Open(state_, &err)) {
    std::fprintf(stderr, "%s: state_dir %s: %s\n", cfg_.file.c_str(), cfg_.state_dir.c_str(), err.c_str());
    return Shutdown(1);
  }
  seq_open_ = true;
  checkpointer_ = std::make_unique<Checkpointer>(state_, log_);
  checkpointer_->Start();

  // Sinks.
  auto make_sink = [&](const PluginSpec& spec, const char* what) -> std::unique_ptr<plugins::Sink> {
    const plugins::SinkFactory* f = plugins::FindSinkFactory(spec.type);
    if (!f) {
      std::string known;
      for (auto t : plugins::SinkTypes()) known += (known.empty() ? "" : ", ") + std::string(t);
      std::fprintf(stderr, "%s: sinks.%s: unknown type '%s' (known: %s)\n", Place(cfg_, spec.line, spec.col).c_str(),
                   what, spec.type.c_str(), known.c_str());
      return nullptr;
    }
    plugins::SinkContext ctx;
    ctx.log = PluginLogger(log_, std::string("sink.") + what);
    std::vector<plugins::ConfigError> perr;
    auto sink = f->Create(spec.node, ctx, &perr);
    for (const auto& e : perr)
      std::fprintf(stderr, "%s: sinks.%s: %s\n", Place(cfg_, e.line, e.col).c_str(), what, e.message.c_str());
    if (!sink) return nullptr;
    std::string serr;
    if (!sink->Start(&serr)) {
      std::fprintf(stderr, "%s: sinks.%s: %s\n", Place(cfg_, spec.line, spec.col).c_str(), what, serr.c_str());
      return nullptr;
    }
    return sink;
  };
  commands_ = make_sink(cfg_.commands_sink, "commands");
  if (!commands_) return Shutdown(1);
  alerts_ = make_sink(cfg_.alerts_sink, "alerts");
  if (!alerts_) return Shutdown(1);

  // Pipeline: restore state, then start.
  PipelineOptions po;
  int shards = cfg_.shards > 0 ? cfg_.shards : static_cast<int>(std::thread::hardware_concurrency());
  po.shards = std::max(1, std::min(64, shards));
  po.queue_capacity = cfg_.queue_capacity;
  po.checkpoint_interval_ms = cfg_.checkpoint_interval_ms;
  po.tz = tz_.get();
  po.location = cfg_.location;
  po.idle_evict_ms = cfg_.idle_evict_ms;
  po.lateness_ms = cfg_.lateness_ms;
  po.max_producers = std::max<size_t>(16, cfg_.sources.size() * 2);
  PipelineDeps deps;
  deps.clock = &clock_;
  deps.commands = commands_.get();
  deps.alerts = alerts_.get();
  Checkpointer* cp = checkpointer_.get();
  deps.checkpoint = [cp](int shard, rules::StateDelta&& d) { cp->Submit(shard, std::move(d)); };
  // seq must never repeat, so an output waits until its seq is durably reserved: during a store
  // outage outputs queue up (backpressure) instead of going out with a seq a crash could reuse.
  deps.next_seq = [this] {
    for (int attempt = 0;; ++attempt) {
      uint64_t s = seq_.Next();
      if (s != 0) return s;
      if (attempt % 50 == 0)
        log_->Logf(LogLevel::kError, kComponent, "cannot reserve output seq numbers: %s (retrying)",
                   seq_.last_error().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  pipeline_ = std::make_unique<Pipeline>(po, std::move(deps), rs);
  auto t0 = std::chrono::steady_clock::now();
  if (!pipeline_->Restore(*state_, &err)) {
    std::fprintf(stderr, "%s: state_dir %s: cannot recover state: %s\n", cfg_.file.c_str(), cfg_.state_dir.c_str(),
                 err.c_str());
    return Shutdown(1);
  }
  restore_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  restored_groups_ = pipeline_->restored_groups();
  log_->Logf(LogLevel::kInfo, kComponent, "state: %llu groups recovered from %s in %.3f s (%llu stale entries dropped)",
             static_cast<unsigned long long>(restored_groups_), cfg_.state_dir.c_str(), restore_seconds_,
             static_cast<unsigned long long>(pipeline_->ignored_entries()));
  if (pipeline_->relaid_packs() > 0) {
    log_->Logf(LogLevel::kInfo, kComponent,
               "state: rewritten for %d shards (%llu packs of another shard count replaced)",
               pipeline_->shard_count(), static_cast<unsigned long long>(pipeline_->relaid_packs()));
  }
  pipeline_->Start();

  // Sources last: events flow only once everything downstream runs.
  for (const auto& spec : cfg_.sources) {
    const plugins::SourceFactory* f = plugins::FindSourceFactory(spec.type);
    if (!f) {
      std::string known;
      for (auto t : plugins::SourceTypes()) known += (known.empty() ? "" : ", ") + std::string(t);
      std::fprintf(stderr, "%s: sources: unknown type '%s' (known: %s)\n", Place(cfg_, spec.line, spec.col).c_str(),
                   spec.type.c_str(), known.c_str());
      return Shutdown(1);
    }
    consumers_.push_back(pipeline_->NewConsumer());
    plugins::SourceContext ctx;
    ctx.consumer = consumers_.back().get();
    ctx.log = PluginLogger(log_, "source");
    ctx.max_message_bytes = cfg_.max_message_bytes;
    const WallClock* clock = &clock_;
    ctx.wall_ms = [clock] { return clock->NowMs(); };
    ctx.steady_ns = [clock] { return clock->SteadyNs(); };
    std::vector<plugins::ConfigError> perr;
    auto src = f->Create(spec.node, ctx, &perr);
    for (const auto& e : perr)
      std::fprintf(stderr, "%s: sources: %s\n", Place(cfg_, e.line, e.col).c_str(), e.message.c_str());
    if (!src) return Shutdown(1);
    if (!src->Start(&err)) {
      std::fprintf(stderr, "%s: sources: %s\n", Place(cfg_, spec.line, spec.col).c_str(), err.c_str());
      return Shutdown(1);
    }
    log_->Logf(LogLevel::kInfo, kComponent, "source %s started", src->name().c_str());
    sources_.push_back(std::move(src));
  }
  // Before /readyz says 200, so that whoever waits for readiness finds this line in the log.
  const std::string tuning = MallocTuningInEffect();
  if (!tuning.empty())
    log_->Logf(LogLevel::kInfo, kComponent,
               "memory: malloc heap on transparent huge pages, one arena (GLIBC_TUNABLES=%s; "
               "VIGIE_MALLOC_TUNING=on)", tuning.c_str());
  ready_ = true;
  not_ready_reason_ = "";
  log_->Logf(LogLevel::kInfo, kComponent, "ready: %d shards, %d rules", po.shards, rules_loaded_.load());

  // Signals were blocked in every thread (RunDaemon); this thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Reload("SIGHUP");
      continue;
    }
    log_->Logf(LogLevel::kInfo, kComponent, "%s: draining and checkpointing", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return Shutdown(0);
  }
}

}  // namespace

int RunDaemon(const std::string& config_path) {
  // Block the signals before any thread exists, so that every thread inherits the mask and only
  // the main thread receives them (sigwait).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Logger log;
  Daemon d(&log);
  return d.Run(config_path);
}

}  // namespace vigie::daemon
