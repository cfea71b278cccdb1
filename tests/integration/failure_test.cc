// Failures and resource bounds through the real daemon and a real RocksDB directory:
// - state writes failing (the VIGIE_FAULT_STATE_FILE test hook of daemon/app.cc: while the file
//   exists every checkpoint batch and seq reservation fails): events keep flowing, the failure is
//   counted and logged, the failed deltas are kept and written once the store works again, and
//   what was written after the recovery restores correctly;
// - memory stays bounded when keys churn and `idle_evict` is set, and evicted groups are deleted
//   from disk too.
// Push sinks throughout: nothing may be lost.
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <thread>

#include "tests/integration/it_test.h"

using namespace vigie::it;

namespace {

// Sets an environment variable of this process for the scope (the harness spawns the daemon with
// this process's environment). Catch2 runs test cases one at a time on one thread.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

std::string Hit(const std::string& dev) { return R"({"kind": "hit", "device": ")" + dev + "\"}"; }

std::string Busy(const std::string& key, int n) {
  return "alert rule=busy key=" + key + " state=firing severity=info summary=" + key + " busy with " +
         std::to_string(n) + " labels={}";
}

// Each sink socket is FIFO: per sink, the seqs must be strictly increasing in the order received
// (the order between the two sinks is not defined).
bool StrictlyIncreasingPerSink(const std::vector<Received>& v) {
  std::map<std::string, uint64_t> last;
  for (const auto& r : v) {
    auto it = last.find(r.sink);
    if (it != last.end() && r.out.seq <= it->second) return false;
    last[r.sink] = r.out.seq;
  }
  return true;
}

uint64_t MaxSeq(const std::vector<Received>& v) {
  uint64_t m = 0;
  for (const auto& r : v) m = std::max(m, r.out.seq);
  return m;
}
uint64_t MinSeq(const std::vector<Received>& v) {
  uint64_t m = UINT64_MAX;
  for (const auto& r : v) m = std::min(m, r.out.seq);
  return m;
}

const char* const kBusyRules = R"(rules:
  - name: busy
    description: Three hits within a minute.
    on: hit
    window: {sliding: 60s}
    let:
      n: count()
    when: n >= 3
    then:
      - alert: {severity: info, summary: "{key} busy with {n}"}
)";

}  // namespace

TEST_CASE("State writes failing: events keep flowing, failures are counted and logged, and once "
          "writes work again the kept deltas land and restore correctly",
          "[integration][failure]") {
  TempDir dir;
  const std::string fault = dir / "fault";
  ScopedEnv env("VIGIE_FAULT_STATE_FILE", fault);
  DaemonConfig cfg;
  cfg.checkpoint_interval = "200ms";
  Daemon d(dir.path(), cfg);
  d.WriteRules("busy.yaml", kBusyRules);

  IT_START(d);
  std::vector<Received> run1;
  {
    Sender in(d.source_endpoint());
    Outputs out(d);
    INFO("stderr:\n" << d.Stderr());
    REQUIRE(d.Stderr().find("fault injection: state writes fail while " + fault + " exists") != std::string::npos);

    // Before the fault: a is active (3 of 3), w holds 1 of 3. Wait until it is on disk.
    for (const char* dev : {"a", "a", "a", "w"}) in.Send(Hit(dev));
    IT_BARRIER(in, out);
    REQUIRE(CanonAll(out.all()) == std::vector<std::string>{Busy("a", 3)});
    REQUIRE(WaitUntil(
        [&] {
          Metrics m = d.Scrape();
          return m.Get("vigie_checkpoint_writes_total") >= 1 && m.Get("vigie_checkpoint_pending_deltas") == 0;
        },
        20s, 20ms));
    REQUIRE(d.Metric("vigie_checkpoint_failures_total") == 0);

    // The fault: every state write fails while the file exists.
    WriteFile(fault, "");
    const double failures0 = d.Metric("vigie_checkpoint_failures_total");
    // Keep the state dirty (fresh probe groups) until a write has failed.
    REQUIRE(WaitUntil(
        [&] {
          if (!Barrier(in, out)) return false;
          return d.Metric("vigie_checkpoint_failures_total") > failures0;
        },
        20s, 50ms));
    REQUIRE(WaitUntil([&] { return d.Stderr().find("state write failed (injected write failure)") != std::string::npos; },
                      10s));
    const size_t mark = out.all().size();
    auto since_mark = [&] { return std::vector<Received>(out.all().begin() + mark, out.all().end()); };

    // While failing: processing goes on. c activates (a new group), w reaches 2 of 3, and d is a
    // new group with 2 of 3. None of this can reach the disk now.
    const double writes_during = d.Metric("vigie_checkpoint_writes_total");
    const double failures1 = d.Metric("vigie_checkpoint_failures_total");
    for (const char* dev : {"c", "w", "c", "d", "c", "d"}) in.Send(Hit(dev));
    IT_BARRIER(in, out);
    CHECK(CanonAll(since_mark()) == std::vector<std::string>{Busy("c", 3)});
    // The checkpointer retries (with backoff) and fails again; nothing is written meanwhile.
    REQUIRE(WaitUntil([&] { return d.Metric("vigie_checkpoint_failures_total") > failures1; }, 20s, 20ms));
    {
      Metrics m = d.Scrape();
      CHECK(m.Get("vigie_checkpoint_writes_total") == writes_during);
      CHECK(m.Get("vigie_checkpoint_pending_deltas") > 0);
    }
    CHECK(d.running());

    // The store works again: the kept deltas are written, nothing stays pending.
    std::filesystem::remove(fault);
    REQUIRE(WaitUntil(
        [&] {
          Metrics m = d.Scrape();
          return m.Get("vigie_checkpoint_writes_total") > writes_during &&
                 m.Get("vigie_checkpoint_pending_deltas") == 0;
        },
        20s, 20ms));
    CHECK(WaitUntil([&] { return d.Stderr().find("state writes succeed again") != std::string::npos; }, 10s));
    IT_STOP_CLEAN(d);
    out.Drain();
    run1 = out.all();
  }
  INFO("run 1 stderr:\n" << d.Stderr());
  // Run 1, before, during and after the fault: no output lost, none repeated, in order per sink.
  REQUIRE(Consecutive(Seqs(run1)));
  REQUIRE(StrictlyIncreasingPerSink(run1));

  // Restart (the fault file is gone): the state written after the recovery is there.
  IT_START(d);
  Sender in(d.source_endpoint());
  Outputs out(d);
  // a (active before the fault) and c (activated during the fault) stay active: no `then` again.
  in.Send(Hit("a"));
  in.Send(Hit("c"));
  IT_BARRIER(in, out);
  CHECK(CanonAll(out.all()).empty());
  // w: 1 hit before the fault + 1 during it + 1 now. d: 2 during the fault + 1 now.
  in.Send(Hit("w"));
  in.Send(Hit("d"));
  IT_BARRIER(in, out);
  CHECK(CanonAll(out.all()) == std::vector<std::string>{Busy("w", 3), Busy("d", 3)});
  // seq across the restart: strictly above everything sent before, strictly increasing.
  CHECK(StrictlyIncreasingPerSink(out.all()));
  CHECK(Consecutive(Seqs(out.all())));
  CHECK(MinSeq(out.all()) > MaxSeq(run1));
  CHECK(d.Metric("vigie_checkpoint_failures_total") == 0);
  IT_STOP_CLEAN(d);
}

TEST_CASE("Memory stays bounded with churning keys and idle eviction, and evicted groups leave "
          "the disk too",
          "[integration][failure]") {
  // Two rules grouped by device: a stateless one whose `when` never holds (it makes no group at
  // all: a stateless rule without `for` makes a group when it first activates) and a short
  // sliding window (a group per device, evictable once its window emptied). Every round brings
  // kDevices never-seen devices; without eviction the daemon would hold kRounds * kDevices
  // groups of the windowed rule.
  constexpr int kRounds = 20;
  constexpr int kDevices = 2000;
  constexpr int kRules = 1;  // rules that hold a group per device
  constexpr auto kPace = 400ms;
  // idle_evict 1s, a round every ~400 ms: a group lives about 3 rounds; 5 rounds' worth leaves
  // room for a loaded machine and is still an eighth of what no eviction would hold.
  constexpr double kBound = 5.0 * kDevices * kRules;
  constexpr double kWithout = double(kRounds) * kDevices * kRules;

  TempDir dir;
  DaemonConfig cfg;
  cfg.checkpoint_interval = "200ms";
  cfg.extra_yaml = "idle_evict: 1s\n";
  Daemon d(dir.path(), cfg);
  d.WriteRules("churn.yaml", R"(rules:
  - name: hot
    on: reading
    when: v > 1000
    then:
      - command: {target: "fans/{device}", action: "on"}
  - name: chatty
    on: reading
    window: {sliding: 300ms}
    let:
      n: count()
    when: n >= 100
    then:
      - alert: {severity: info, summary: "{key} chatty"}
)");

  IT_START(d);
  std::vector<double> groups_after_round, state_bytes_after_round;
  {
    Sender in(d.source_endpoint());
    Outputs out(d);
    int next = 0;
    for (int round = 0; round < kRounds; ++round) {
      const auto round_start = std::chrono::steady_clock::now();
      // Ten batches of 200 events (no ts: ingest time, i.e. now).
      for (int b = 0; b < 10; ++b) {
        std::string batch = "[";
        for (int i = 0; i < kDevices / 10; ++i) {
          if (i > 0) batch += ",";
          batch += R"({"kind": "reading", "device": "dev-)" + std::to_string(next++) + R"(", "v": 1})";
        }
        batch += "]";
        in.Send(batch);
      }
      IT_BARRIER(in, out);
      Metrics m = d.Scrape();
      const auto scraped = std::chrono::steady_clock::now();
      REQUIRE(m.errors.empty());
      const double groups = m.Get("vigie_state_groups");
      const double bytes = m.Get("vigie_rule_state_bytes", {{"rule", "hot"}}) +
                           m.Get("vigie_rule_state_bytes", {{"rule", "chatty"}});
      groups_after_round.push_back(groups);
      state_bytes_after_round.push_back(bytes);
      INFO("round " << round << ": groups " << groups << " (hot " << m.Get("vigie_rule_groups", {{"rule", "hot"}})
                    << ", chatty " << m.Get("vigie_rule_groups", {{"rule", "chatty"}}) << "), state bytes "
                    << bytes << ", rss " << m.Get("process_resident_memory_bytes"));
      CHECK(m.Get("vigie_rule_groups", {{"rule", "hot"}}) == 0);
      // This round's devices are all there right after it, when less than idle_evict passed
      // since it started (nothing is evicted too early)...
      if (scraped - round_start < 900ms) CHECK(groups >= kDevices * kRules);
      // ...and the total never grows with the number of rounds.
      CHECK(groups <= kBound);
      // Pacing (not synchronisation): the next round starts kPace after this one started.
      std::this_thread::sleep_until(round_start + kPace);
    }
    CHECK(WithoutProbes(out.all()).empty());  // v = 1, one event per device: nothing fires
    INFO("groups after each round: " << Catch::Detail::stringify(groups_after_round));
    INFO("state bytes after each round: " << Catch::Detail::stringify(state_bytes_after_round));
    // The last rounds hold about as many groups as the first ones did once eviction started
    // (rounds 3-5, more than idle_evict in): no growth. Without eviction the last rounds would
    // hold about 4 times as many.
    const double late = *std::max_element(groups_after_round.end() - 5, groups_after_round.end());
    CHECK(late <= kBound);
    CHECK(late < kWithout / 4);
    const double plateau = *std::max_element(groups_after_round.begin() + 3, groups_after_round.begin() + 6);
    CHECK(late <= 1.5 * plateau);
    // Same for the memory the rules account for. (process_resident_memory_bytes is not asserted:
    // it is dominated by RocksDB's memtable, which grows with every put and delete until flushed.)
    const double late_bytes =
        *std::max_element(state_bytes_after_round.end() - 5, state_bytes_after_round.end());
    CHECK(late_bytes > 0);
    CHECK(late_bytes <=
          2 * *std::max_element(state_bytes_after_round.begin() + 3, state_bytes_after_round.begin() + 6));

    // Wait until the evictions are on disk: everything checkpointed, nothing pending.
    REQUIRE(WaitUntil(
        [&] {
          Metrics m = d.Scrape();
          return m.Get("vigie_checkpoint_pending_deltas") == 0;
        },
        20s, 20ms));
    IT_STOP_CLEAN(d);
  }

  // Restart: only the recent groups come back from disk, not 40,000 per rule.
  IT_START(d);
  const double restored = d.Metric("vigie_state_restored_groups");
  INFO("restored groups: " << restored);
  CHECK(restored <= kBound);
  CHECK(restored < kWithout / 4);
  // And those are evicted in their turn (idle for more than 1 s already): the daemon ends with
  // only the probe groups (active, never evicted).
  CHECK(WaitUntil([&] { return d.Metric("vigie_state_groups") < 100; }, 20s, 50ms));
  IT_STOP_CLEAN(d);
}
