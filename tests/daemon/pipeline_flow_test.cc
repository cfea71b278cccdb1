// Pipeline threading with a scripted fake engine (no RuleSet): routing, backpressure, drain on
// Stop, reload between events, a manual clock driving timers, consecutive seq, restore and
// checkpoints. Waits are on conditions with deadlines, never sleeps.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <sched.h>
#include <sys/types.h>

#include "daemon/metrics/metrics.h"
#include "daemon/pipeline/pipeline.h"
#include "daemon/state/store.h"

namespace vigie::daemon {
namespace {

using rules::Event;
using rules::EventBuffer;
using rules::Output;
using rules::Value;

bool WaitUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::yield();
  }
  return true;
}

double Num(const Event& ev, std::string_view name, double dflt = 0) {
  Value v = ev.Get(name);
  return v.is_number() ? v.num : dflt;
}
std::string Str(const Event& ev, std::string_view name) {
  for (const auto& f : ev.fields) {
    if (f.name == name) return f.value.str;
  }
  return "";
}

Event MakeEvent(int64_t ts, const std::string& device, uint64_t mask,
                std::vector<std::pair<std::string, double>> nums = {}) {
  Event ev;
  ev.ts_ms = ts;
  ev.has_ts = true;
  ev.kind = "test";
  ev.fields.push_back({"device", rules::OwnedValue(Value::String(device))});
  ev.fields.push_back({"mask", rules::OwnedValue(Value::Number(static_cast<double>(mask)))});
  for (auto& [k, v] : nums) ev.fields.push_back({k, rules::OwnedValue(Value::Number(v))});
  return ev;
}

// Shared between the test and the fakes. Logs are written by shard threads and read by the test
// after Stop() (thread join gives the ordering); live observations go through atomics.
struct World {
  explicit World(int shards) : logs(static_cast<size_t>(shards)) {}
  std::vector<std::vector<std::string>> logs;   // per shard
  std::atomic<bool> gate_open{true};            // events with "stall" wait for it
  std::atomic<int> stalled{0};                  // shard threads waiting at the gate
  std::atomic<int64_t> advanced_to{INT64_MIN};  // last AdvanceTo argument (any shard)
  ManualClock* clock = nullptr;                 // events with "cost_ms" advance it (Process)
};

class FakeEngine final : public ShardEngine {
 public:
  FakeEngine(int index, World* w) : index_(index), w_(w) {}

  void AdvanceTo(int64_t now_ms, rules::OutputSink& out) override {
    w_->advanced_to.store(now_ms);
    while (!timers_.empty() && *timers_.begin() <= now_ms) {
      int64_t t = *timers_.begin();
      timers_.erase(timers_.begin());
      now_ = std::max(now_, t);
      Output o;
      o.type = rules::OutputType::kAlert;
      o.rule = "timer";
      o.ts_ms = t;
      o.severity = "warning";
      o.state = "firing";
      out.Emit(std::move(o));
    }
    now_ = std::max(now_, now_ms);
  }
  void Process(const Event& ev, int64_t t, rules::OutputSink& out) override {
    AdvanceTo(t, out);
    if (ev.Has("stall")) {
      w_->stalled.fetch_add(1);
      while (!w_->gate_open.load()) std::this_thread::yield();
      w_->stalled.fetch_sub(1);
    }
    if (ev.Has("cost_ms") && w_->clock != nullptr) {
      w_->clock->AdvanceMs(static_cast<int64_t>(Num(ev, "cost_ms")));
    }
    rules::RuleStats::Add(stats_.evaluations);
    devices_.insert(Str(ev, "device"));
    Log("ev " + Str(ev, "device") + " n=" + std::to_string(static_cast<long long>(Num(ev, "n"))) +
        " t=" + std::to_string(t) + " v=" + std::to_string(version_));
    if (ev.Has("timer_in")) timers_.insert(t + static_cast<int64_t>(Num(ev, "timer_in")));
    if (ev.Has("emit")) {
      Output o;
      o.type = rules::OutputType::kCommand;
      o.rule = "fake";
      o.key = Str(ev, "device");
      o.ts_ms = t;
      o.ingest_ns = ev.ingest_ns;
      o.target = "lights/" + o.key;
      o.action = "dim";
      out.Emit(std::move(o));
    }
  }
  int64_t now() const override { return now_; }
  int64_t NextTimer() const override { return timers_.empty() ? INT64_MAX : *timers_.begin(); }
  void SwapRules(std::shared_ptr<const rules::RuleSet>) override {
    ++version_;
    Log("swap");
  }
  void TakeDirty(rules::StateDelta* d) override {
    d->puts.push_back({"g/" + std::to_string(index_) + "/dirty", std::to_string(devices_.size())});
  }
  void TakeAll(rules::StateDelta* d) override {
    d->puts.push_back({"g/" + std::to_string(index_) + "/all", std::to_string(devices_.size())});
  }
  bool Restore(std::string_view key, std::string_view value) override {
    // "g/x/...": an entry every shard takes from (a pack of another shard count), that shard 0
    // names for the full rewrite.
    if (key.substr(0, 4) == "g/x/") {
      if (index_ == 0) foreign_.emplace_back(key);
      return true;
    }
    const std::string mine = "g/" + std::to_string(index_) + "/";
    if (key.substr(0, mine.size()) != mine) return false;
    Log("restore " + std::string(key) + "=" + std::string(value));
    return true;
  }
  void TakeForeignKeys(std::vector<std::string>* keys) override {
    for (auto& k : foreign_) keys->push_back(std::move(k));
    foreign_.clear();
  }
  void FinishRestore(int64_t now_ms, rules::OutputSink& out) override {
    now_ = now_ms;
    Output o;
    o.type = rules::OutputType::kAlert;
    o.rule = "restored";
    o.key = std::to_string(index_);
    o.severity = "info";
    o.state = "firing";
    o.ts_ms = now_ms;
    out.Emit(std::move(o));
  }
  size_t group_count() const override { return devices_.size(); }
  size_t rule_count() const override { return 1; }
  const std::string& rule_name(size_t) const override { return name_; }
  const rules::RuleStats& stats(size_t) const override { return stats_; }

 private:
  void Log(std::string s) { w_->logs[static_cast<size_t>(index_)].push_back(std::move(s)); }
  int index_;
  World* w_;
  int64_t now_ = INT64_MIN / 2;
  int version_ = 0;
  std::vector<std::string> foreign_;  // control thread (Restore, TakeForeignKeys) only
  std::multiset<int64_t> timers_;
  std::set<std::string> devices_;
  std::string name_ = "fake";
  rules::RuleStats stats_;
};

// Routes by the event's "mask" field.
class MaskRouting final : public Routing {
 public:
  uint64_t Mask(const Event& ev, int) const override {
    return static_cast<uint64_t>(Num(ev, "mask"));
  }
};

// Collects outputs (dispatcher thread) for the test thread.
struct Outputs {
  std::mutex mu;
  std::vector<Output> all;
  void Add(const Output& o) {
    std::lock_guard<std::mutex> lk(mu);
    all.push_back(o);
  }
  size_t size() {
    std::lock_guard<std::mutex> lk(mu);
    return all.size();
  }
  std::vector<Output> Copy() {
    std::lock_guard<std::mutex> lk(mu);
    return all;
  }
};

struct Fixture {
  explicit Fixture(PipelineOptions opts, int64_t now_ms = 1000000,
                   OutputDispatcher::SeqFn next_seq = nullptr)
      : clock(now_ms, 1), world(opts.shards) {
    world.clock = &clock;
    PipelineDeps deps;
    deps.clock = &clock;
    deps.engine_factory = [this](int i, int, std::shared_ptr<const rules::RuleSet>) {
      return std::unique_ptr<ShardEngine>(new FakeEngine(i, &world));
    };
    deps.routing = [](std::shared_ptr<const rules::RuleSet>) {
      return std::make_shared<MaskRouting>();
    };
    deps.checkpoint = [this](int shard, rules::StateDelta&& d) {
      std::lock_guard<std::mutex> lk(ckpt_mu);
      for (const auto& [k, v] : d.puts) {
        checkpoints.push_back(std::to_string(shard) + ":" + std::string(k) + "=" + std::string(v));
      }
    };
    deps.next_seq = std::move(next_seq);
    pipeline = std::make_unique<Pipeline>(opts, std::move(deps), nullptr);
    pipeline->SetObserver([this](const Output& o) { outputs.Add(o); });
  }
  std::vector<std::string> Checkpoints() {
    std::lock_guard<std::mutex> lk(ckpt_mu);
    return checkpoints;
  }

  ManualClock clock;
  World world;
  Outputs outputs;
  std::mutex ckpt_mu;
  std::vector<std::string> checkpoints;
  std::unique_ptr<Pipeline> pipeline;
};

PipelineOptions Opts(int shards) {
  PipelineOptions o;
  o.shards = shards;
  o.queue_capacity = 1024;
  o.max_batch_events = 64;
  o.checkpoint_interval_ms = 0;
  return o;
}

// "ev <device> n=<n> ..." lines of a shard's log, devices and n only.
std::vector<std::string> EventsOf(const std::vector<std::string>& log) {
  std::vector<std::string> out;
  for (const auto& l : log) {
    if (l.rfind("ev ", 0) != 0) continue;
    out.push_back(l.substr(0, l.find(" t=")));
  }
  return out;
}

TEST_CASE("pipeline: router sends each event to the shards of its mask, copies when several",
          "[pipeline][concurrency]") {
  Fixture f(Opts(3));
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  EventBuffer msg;
  msg.Push(MakeEvent(1000, "a", 0b001, {{"n", 1}}));
  msg.Push(MakeEvent(1000, "b", 0b110, {{"n", 2}}));  // two shards: copied
  msg.Push(MakeEvent(1000, "c", 0, {{"n", 3}}));      // no rule: dropped, counted
  msg.Push(MakeEvent(1000, "d", 0b100, {{"n", 4}}));
  msg.Push(MakeEvent(1000, "e", 0b111, {{"n", 5}}));
  REQUIRE(consumer->Consume(msg));
  f.pipeline->Stop();

  CHECK(EventsOf(f.world.logs[0]) == std::vector<std::string>{"ev a n=1", "ev e n=5"});
  CHECK(EventsOf(f.world.logs[1]) == std::vector<std::string>{"ev b n=2", "ev e n=5"});
  CHECK(EventsOf(f.world.logs[2]) ==
        std::vector<std::string>{"ev b n=2", "ev d n=4", "ev e n=5"});
  const RouterStats& rs = f.pipeline->router().stats();
  CHECK(rs.events.load() == 5);
  CHECK(rs.unmatched.load() == 1);
  CHECK(rs.routed.load() == 7);
  CHECK(rs.copied.load() == 3);

  MetricsWriter w;
  f.pipeline->Collect(w);
  const std::string text = w.Render();
  // Each event once, however many shards it went to: 4 routed + 1 unmatched.
  CHECK(text.find("vigie_events_processed_total 5\n") != std::string::npos);
  CHECK(text.find("vigie_events_unmatched_total 1\n") != std::string::npos);
  CHECK(text.find("vigie_queue_depth{shard=\"2\"} 0\n") != std::string::npos);
  CHECK(text.find("vigie_rule_evaluations_total{rule=\"fake\"} 7\n") != std::string::npos);
  CHECK(text.find("vigie_state_groups 7\n") != std::string::npos);  // a,e | b,e | b,d,e
}

TEST_CASE("pipeline: a full shard queue blocks Consume until the shard makes room; nothing lost",
          "[pipeline][concurrency]") {
  PipelineOptions o = Opts(1);
  o.queue_capacity = 4;
  o.max_batch_events = 1;  // one event per batch: the queue holds at most 4
  Fixture f(o);
  f.world.gate_open = false;
  f.pipeline->Start();

  std::atomic<bool> returned{false};
  std::atomic<bool> result{false};
  int64_t caller_blocked_ns = 0;
  std::thread source([&] {
    auto consumer = f.pipeline->NewConsumer();
    EventBuffer msg;
    msg.Push(MakeEvent(1000, "x", 1, {{"n", 0}, {"stall", 1}}));
    for (int i = 1; i < 20; ++i) msg.Push(MakeEvent(1000, "x", 1, {{"n", i}}));
    result = consumer->Consume(msg, &caller_blocked_ns);
    returned = true;
  });
  // The shard is stuck on event 0; the queue fills and the source must wait.
  REQUIRE(WaitUntil([&] { return f.world.stalled.load() == 1; }));
  REQUIRE(WaitUntil([&] { return f.pipeline->router().stats().backpressure_waits.load() == 1; }));
  CHECK_FALSE(returned.load());
  CHECK(f.pipeline->shard(0).queue_depth() <= 4);

  f.world.gate_open = true;
  source.join();
  CHECK(result.load());
  f.pipeline->Stop();

  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back("ev x n=" + std::to_string(i));
  CHECK(EventsOf(f.world.logs[0]) == want);
  CHECK(f.pipeline->router().stats().blocked_ns.load() > 0);
  // The one caller is told the same wait (its source's vigie_source_blocked_seconds_total).
  CHECK(static_cast<uint64_t>(caller_blocked_ns) == f.pipeline->router().stats().blocked_ns.load());
}

TEST_CASE("pipeline: a Consume with room reports no blocked time, however long routing takes",
          "[pipeline]") {
  // The source's blocked time once counted the whole Consume call (routing included), so an
  // idle daemon showed a tenth of its source's time as "blocked" by backpressure.
  PipelineOptions o = Opts(2);
  Fixture f(o);
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  int64_t blocked_ns = 0;
  for (int m = 0; m < 50; ++m) {
    EventBuffer msg;
    for (int i = 0; i < 64; ++i) msg.Push(MakeEvent(1000, "x", 1 + i % 3, {{"n", i}}));
    REQUIRE(consumer->Consume(msg, &blocked_ns));
    REQUIRE(WaitUntil([&] { return f.pipeline->shard(0).queue_depth() == 0 &&
                                   f.pipeline->shard(1).queue_depth() == 0; }));
  }
  f.pipeline->Stop();
  CHECK(f.pipeline->router().stats().routed.load() > 0);
  CHECK(f.pipeline->router().stats().backpressure_waits.load() == 0);
  CHECK(blocked_ns == 0);
}

TEST_CASE("pipeline: Close releases a Consume blocked on a full queue", "[pipeline][concurrency]") {
  PipelineOptions o = Opts(1);
  o.queue_capacity = 2;
  o.max_batch_events = 1;
  Fixture f(o);
  f.world.gate_open = false;
  f.pipeline->Start();
  std::atomic<bool> result{true};
  std::thread source([&] {
    EventBuffer msg;
    msg.Push(MakeEvent(1000, "x", 1, {{"stall", 1}}));
    for (int i = 0; i < 10; ++i) msg.Push(MakeEvent(1000, "x", 1));
    result = f.pipeline->consumer()->Consume(msg);
  });
  REQUIRE(WaitUntil([&] { return f.pipeline->router().stats().backpressure_waits.load() == 1; }));
  // Stop closes the router first (the blocked Consume gives up), then drains the shard, which
  // needs the gate open.
  std::thread stopper([&] { f.pipeline->Stop(); });
  source.join();
  CHECK_FALSE(result.load());
  f.world.gate_open = true;
  stopper.join();
  const uint64_t dropped = f.pipeline->router().stats().dropped_closed.load();
  CHECK(dropped > 0);
  CHECK(EventsOf(f.world.logs[0]).size() + dropped == 11);
}

TEST_CASE("pipeline: Stop drains every enqueued event, per-source order kept",
          "[pipeline][concurrency]") {
  PipelineOptions o = Opts(2);
  o.queue_capacity = 64;  // small: sources hit backpressure often
  o.max_batch_events = 8;
  Fixture f(o);
  f.pipeline->Start();
  constexpr int kSources = 4, kMessages = 300;
  std::vector<std::thread> sources;
  std::atomic<int> refused{0};
  for (int s = 0; s < kSources; ++s) {
    sources.emplace_back([&, s] {
      auto consumer = f.pipeline->NewConsumer();
      int n = 0;
      EventBuffer msg;
      for (int m = 0; m < kMessages; ++m) {
        msg.Clear();
        for (int k = 0; k < 1 + (m % 13); ++k) {
          msg.Push(MakeEvent(1000, "s" + std::to_string(s), 1 + (n % 3), {{"n", n}}));
          ++n;
        }
        if (!consumer->Consume(msg)) refused.fetch_add(1);
      }
    });
  }
  for (auto& t : sources) t.join();
  CHECK(refused.load() == 0);
  f.pipeline->Stop();

  // Expected per shard and source: the n's whose mask includes the shard, in order.
  for (int shard = 0; shard < 2; ++shard) {
    std::map<std::string, std::vector<std::string>> got, want;
    for (const auto& l : EventsOf(f.world.logs[static_cast<size_t>(shard)])) {
      got[l.substr(3, l.find(' ', 3) - 3)].push_back(l);
    }
    for (int s = 0; s < kSources; ++s) {
      int n = 0;
      for (int m = 0; m < kMessages; ++m) {
        for (int k = 0; k < 1 + (m % 13); ++k, ++n) {
          if ((1 + (n % 3)) & (1 << shard)) {
            want["s" + std::to_string(s)].push_back("ev s" + std::to_string(s) +
                                                    " n=" + std::to_string(n));
          }
        }
      }
    }
    CHECK(got == want);
    CHECK(f.pipeline->shard(shard).queue_depth() == 0);
  }
  CHECK(f.pipeline->router().stats().dropped_closed.load() == 0);
}

TEST_CASE("pipeline: reload swaps the rules between two events", "[pipeline][concurrency]") {
  Fixture f(Opts(2));
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  EventBuffer msg;
  for (int i = 0; i < 50; ++i) msg.Push(MakeEvent(1000000, "x", 3, {{"n", i}}));
  REQUIRE(consumer->Consume(msg));
  REQUIRE(f.pipeline->Reload(nullptr));
  msg.Clear();
  for (int i = 50; i < 100; ++i) msg.Push(MakeEvent(1000000, "x", 3, {{"n", i}}));
  REQUIRE(consumer->Consume(msg));
  f.pipeline->Stop();

  for (int shard = 0; shard < 2; ++shard) {
    const auto& log = f.world.logs[static_cast<size_t>(shard)];
    REQUIRE(std::count(log.begin(), log.end(), "swap") == 1);
    auto swap = std::find(log.begin(), log.end(), "swap");
    // Every event sent after Reload() returned is processed by the new rules (v=1); all events
    // are whole and in order around the swap.
    int n = 0;
    for (auto it = log.begin(); it != log.end(); ++it) {
      if (it == swap) continue;
      const bool after = it > swap;
      CHECK(*it == "ev x n=" + std::to_string(n) + " t=1000000 v=" + (after ? "1" : "0"));
      if (n >= 50) CHECK(after);
      ++n;
    }
    CHECK(n == 100);
    CHECK(f.pipeline->shard(shard).stats().swaps.load() == 1);
  }
}

TEST_CASE("pipeline: the manual clock drives timers, lateness and clamping",
          "[pipeline][concurrency]") {
  PipelineOptions o = Opts(1);
  o.lateness_ms = 100;
  Fixture f(o, /*now_ms=*/10000);
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  EventBuffer msg;
  // Engine time starts at wall - lateness = 9900.
  msg.Push(MakeEvent(9950, "a", 1, {{"n", 1}, {"timer_in", 5000}}));  // timer at 14950
  msg.Push(MakeEvent(50000, "a", 1, {{"n", 2}}));  // future: processed at wall 10000
  msg.Push(MakeEvent(5000, "a", 1, {{"n", 3}}));   // late: processed at engine time
  REQUIRE(consumer->Consume(msg));
  REQUIRE(WaitUntil([&] { return f.pipeline->shard(0).stats().processed.load() == 3; }));

  // 14950 + lateness 100: not due at wall 15049.
  f.clock.SetMs(15049);
  f.pipeline->Wake();
  REQUIRE(WaitUntil([&] { return f.world.advanced_to.load() == 14949; }));
  CHECK(f.outputs.size() == 0);
  f.clock.SetMs(15050);
  f.pipeline->Wake();
  REQUIRE(WaitUntil([&] { return f.outputs.size() == 1; }));
  const Output timer = f.outputs.Copy()[0];
  CHECK(timer.rule == "timer");
  CHECK(timer.ts_ms == 14950);  // the timer's own instant, not the time it was noticed
  f.pipeline->Stop();

  CHECK(EventsOf(f.world.logs[0]).size() == 3);
  CHECK(f.world.logs[0][0] == "ev a n=1 t=9950 v=0");
  CHECK(f.world.logs[0][1] == "ev a n=2 t=10000 v=0");
  CHECK(f.world.logs[0][2] == "ev a n=3 t=10000 v=0");
  CHECK(f.pipeline->shard(0).stats().late.load() == 1);
  CHECK(f.pipeline->shard(0).stats().future.load() == 1);
}

TEST_CASE("pipeline: each event's latency runs to the end of its own processing",
          "[pipeline]") {
  Fixture f(Opts(1));
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  EventBuffer msg;
  const int64_t ingest = f.clock.SteadyNs();
  for (int i = 1; i <= 3; ++i) {  // one batch; each event takes 2 ms of (manual) time
    msg.Push(MakeEvent(1000, "a", 1, {{"n", i}, {"cost_ms", 2}}));
    msg.back().ingest_ns = ingest;
  }
  Event copy = MakeEvent(1000, "b", 1, {{"n", 4}, {"cost_ms", 2}});
  copy.ingest_ns = ingest;
  copy.is_copy = true;  // counted where its original goes, not here
  msg.Push(copy);
  REQUIRE(consumer->Consume(msg));
  REQUIRE(WaitUntil([&] { return f.pipeline->shard(0).stats().batches.load() == 1; }));
  f.pipeline->Stop();
  const HistogramSnapshot h = f.pipeline->shard(0).stats().latency.Snapshot();
  CHECK(h.buckets.back() == 3);           // the copy is not observed
  CHECK(h.sum == Approx(0.012));          // 2 + 4 + 6 ms, not 3 x 6 (the end of the batch)
  CHECK(f.pipeline->shard(0).stats().processed.load() == 3);
}

TEST_CASE("pipeline: outputs of all shards get consecutive seq", "[pipeline][concurrency]") {
  PipelineOptions o = Opts(3);
  o.output_queue_capacity = 4;  // shards wait on the dispatcher: nothing may be dropped
  uint64_t next = 1000;  // dispatcher thread only
  Fixture f(o, 1000000, [&next] { return next++; });
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  constexpr int kEvents = 600;
  EventBuffer msg;
  for (int i = 0; i < kEvents; ++i) {
    msg.Push(MakeEvent(1000, "d" + std::to_string(i), uint64_t{1} << (i % 3), {{"emit", 1}}));
  }
  REQUIRE(consumer->Consume(msg));
  f.pipeline->Stop();

  const auto outs = f.outputs.Copy();
  REQUIRE(outs.size() == kEvents);
  for (size_t i = 0; i < outs.size(); ++i) CHECK(outs[i].seq == 1000 + i);
  std::set<std::string> keys;
  for (const auto& out : outs) keys.insert(out.key);
  CHECK(keys.size() == kEvents);
  CHECK(f.pipeline->dispatcher().stats().commands.load() == kEvents);
  CHECK(f.pipeline->dispatcher().stats().unsent.load() == kEvents);  // no sink configured
}

// The shard, not a timeout, wakes the dispatcher for what it queued (ShardWorker::QueueSink):
// the dispatcher's idle sleep is a minute here, the waits are 10 s. With the steady clock frozen
// the first output of the run wakes it at once and every later one falls within output_wake_ns
// of that wake, so only the announcement at the end of a round delivers them (checked: without
// it this test fails). Last, the output of a timer that fires while the shard is idle.
TEST_CASE("pipeline: the shard wakes a sleeping dispatcher for the outputs it queued",
          "[pipeline][concurrency]") {
  PipelineOptions o = Opts(1);
  o.max_idle_ms = 60000;
  Fixture f(o, /*now_ms=*/10000);
  f.pipeline->Start();
  auto consumer = f.pipeline->NewConsumer();
  EventBuffer msg;
  msg.Push(MakeEvent(10000, "a", 1, {{"emit", 1}, {"timer_in", 50}}));
  REQUIRE(consumer->Consume(msg));
  REQUIRE(WaitUntil([&] { return f.outputs.size() == 1; }));
  for (int round = 0; round < 3; ++round) {
    msg.Clear();
    for (int i = 0; i < 5; ++i) {
      msg.Push(MakeEvent(10000, "b" + std::to_string(i), 1, {{"emit", 1}}));
    }
    REQUIRE(consumer->Consume(msg));
    REQUIRE(WaitUntil([&] { return f.outputs.size() == 1 + 5 * (round + 1u); }));
  }
  f.clock.SetMs(10050);  // the timer (10050) is due
  f.pipeline->Wake();
  REQUIRE(WaitUntil([&] { return f.outputs.size() == 17; }));
  CHECK(f.outputs.Copy().back().rule == "timer");
  f.pipeline->Stop();
}

TEST_CASE("pipeline: an output waits for a seq while the allocator fails, none is skipped",
          "[pipeline][concurrency]") {
  uint64_t calls = 0, next = 1;  // dispatcher thread only
  Fixture f(Opts(1), 1000000, [&] { return ++calls <= 3 ? uint64_t{0} : next++; });
  f.pipeline->Start();
  EventBuffer msg;
  for (int i = 0; i < 5; ++i) msg.Push(MakeEvent(1000000, "d" + std::to_string(i), 1, {{"emit", 1}}));
  REQUIRE(f.pipeline->consumer()->Consume(msg));
  f.pipeline->Stop();
  const auto outs = f.outputs.Copy();
  REQUIRE(outs.size() == 5);
  for (size_t i = 0; i < outs.size(); ++i) {
    CHECK(outs[i].seq == i + 1);
    CHECK(outs[i].key == "d" + std::to_string(i));
  }
  CHECK(f.pipeline->dispatcher().stats().seq_failures.load() == 3);
  CHECK(f.pipeline->dispatcher().stats().dropped.load() == 0);
}

TEST_CASE("pipeline: entries of another shard count are replaced by every shard's full "
          "checkpoint, in one write, before the shards start", "[pipeline]") {
  MemStateStore mem;
  FaultyStateStore store(&mem);
  std::string err;
  REQUIRE(mem.Put("g/x/old-pack", "p", false, &err));
  REQUIRE(mem.Put("g/1/b", "2", false, &err));
  {
    // The write fails: Restore fails, saying why, and the old entries stay.
    Fixture f(Opts(2), /*now_ms=*/50000);
    store.fail_writes = true;
    CHECK_FALSE(f.pipeline->Restore(store, &err));
    CHECK(err.find("rewriting state for 2 shards: ") == 0);
    CHECK(f.pipeline->relaid_packs() == 0);
    CHECK(mem.Dump() == "g/1/b=2\ng/x/old-pack=p\n");
  }
  store.fail_writes = false;
  Fixture f(Opts(2), /*now_ms=*/50000);
  REQUIRE(f.pipeline->Restore(store, &err));
  CHECK(f.pipeline->restored_entries() == 2);  // g/x by both shards, g/1/b by shard 1
  CHECK(f.pipeline->relaid_packs() == 1);
  // Both shards' TakeAll, and the old entry gone.
  CHECK(mem.Dump() == "g/0/all=0\ng/1/all=0\ng/1/b=2\n");
}

TEST_CASE("pipeline: restore feeds each shard its entries; checkpoints periodic and final",
          "[pipeline][concurrency]") {
  PipelineOptions o = Opts(2);
  o.checkpoint_interval_ms = 1000;
  Fixture f(o, /*now_ms=*/50000);
  MemStateStore store;
  std::string err;
  REQUIRE(store.Put("g/0/a", "1", false, &err));
  REQUIRE(store.Put("g/1/b", "2", false, &err));
  REQUIRE(store.Put("g/7/zz", "3", false, &err));  // no shard takes it
  REQUIRE(store.Put("m/seq_next", "9", false, &err));  // not engine state
  REQUIRE(f.pipeline->Restore(store, &err));
  CHECK(f.pipeline->restored_entries() == 2);
  CHECK(f.pipeline->ignored_entries() == 1);
  // FinishRestore outputs are sent (the dispatcher runs from Restore on).
  REQUIRE(WaitUntil([&] { return f.outputs.size() == 2; }));
  f.pipeline->Start();
  CHECK_FALSE(f.pipeline->Restore(store, &err));

  EventBuffer msg{MakeEvent(50000, "q", 3)};
  REQUIRE(f.pipeline->consumer()->Consume(msg));
  // Both workers are running (each has processed q) before the clock moves.
  REQUIRE(WaitUntil([&] {
    return f.pipeline->shard(0).stats().batches.load() == 1 &&
           f.pipeline->shard(1).stats().batches.load() == 1;
  }));
  CHECK(f.Checkpoints().empty());
  f.clock.SetMs(51000);
  f.pipeline->Wake();
  const bool two = WaitUntil([&] { return f.Checkpoints().size() >= 2; });
  INFO("checkpoints: " << ::Catch::Detail::stringify(f.Checkpoints()));
  REQUIRE(two);
  f.pipeline->Stop();

  auto cps = f.Checkpoints();
  std::sort(cps.begin(), cps.begin() + 2);
  std::sort(cps.begin() + 2, cps.end());
  CHECK(cps == std::vector<std::string>{"0:g/0/dirty=1", "1:g/1/dirty=1", "0:g/0/all=1",
                                        "1:g/1/all=1"});
  CHECK(f.world.logs[0][0] == "restore g/0/a=1");
  CHECK(f.world.logs[1][0] == "restore g/1/b=2");
}

TEST_CASE("pipeline: the dispatcher runs as a batch thread, the shards as ordinary ones",
          "[pipeline]") {
  // SCHED_BATCH keeps the dispatcher from preempting the shard that wakes it (dispatch.cc).
  Fixture f(Opts(2));
  f.pipeline->Start();
  // Thread name -> scheduling policy. The threads name themselves once started: wait for both.
  std::map<std::string, int> policy;
  const bool named = WaitUntil([&] {
    policy.clear();
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(entry.path() / "comm");
      std::string name;
      std::getline(comm, name);
      const pid_t tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
      policy[name] = sched_getscheduler(tid);
    }
    return policy.count("vg-dispatch") == 1 && policy.count("vg-shard-0") == 1 &&
           policy["vg-dispatch"] == SCHED_BATCH;
  });
  f.pipeline->Stop();
  INFO("dispatcher " << (policy.count("vg-dispatch") ? policy["vg-dispatch"] : -2));
  CHECK(named);
  CHECK(policy["vg-dispatch"] == SCHED_BATCH);
  CHECK(policy["vg-shard-0"] == SCHED_OTHER);
}

}  // namespace
}  // namespace vigie::daemon

namespace vigie::daemon {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST_CASE("pipeline: a round's steps take at most their share of the shard's time") {
  RoundPacer p(1.0 / 3, 1000 * kMs);
  p.Begin(0);
  CHECK(p.Due(0));  // the first step at once
  p.Stepped(0, 2 * kMs);
  // A 2 ms step: the next one 4 ms later (2 of every 6 ms).
  CHECK(p.WaitNs(2 * kMs) == 4 * kMs);
  CHECK_FALSE(p.Due(5 * kMs));
  CHECK(p.WaitNs(5 * kMs) == kMs);
  CHECK(p.Due(6 * kMs));
  p.Stepped(7 * kMs, 7 * kMs + kMs / 2);  // a shorter step: a shorter pause
  CHECK(p.WaitNs(7 * kMs + kMs / 2) == kMs);
}

TEST_CASE("pipeline: a round that lasted its interval goes on at full speed") {
  RoundPacer p(1.0 / 3, 1000 * kMs);
  p.Begin(100 * kMs);
  p.Stepped(100 * kMs, 700 * kMs);  // would pause until 1 900 ms
  CHECK(p.WaitNs(800 * kMs) == 300 * kMs);  // only until the interval is over
  CHECK(p.Due(1100 * kMs));
  p.Stepped(1100 * kMs, 1102 * kMs);
  CHECK(p.Due(1102 * kMs));  // no pause any more in this round
  // A new round is paced again.
  p.Begin(3000 * kMs);
  p.Stepped(3000 * kMs, 3002 * kMs);
  CHECK_FALSE(p.Due(3003 * kMs));
}

TEST_CASE("pipeline: share 1 is no pacing") {
  RoundPacer p(1.0, 1000 * kMs);
  p.Begin(0);
  p.Stepped(0, 50 * kMs);
  CHECK(p.Due(50 * kMs));
  CHECK(p.WaitNs(50 * kMs) == 0);
}

}  // namespace
}  // namespace vigie::daemon
