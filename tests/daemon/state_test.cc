#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include "daemon/state/checkpointer.h"
#include "daemon/state/seq.h"
#include "daemon/state/store.h"
#include "tests/daemon/test_util.h"

using namespace vigie::daemon;
using vigie::daemon::testing::TempDir;
using vigie::daemon::testing::WaitFor;
using vigie::rules::StateDelta;

namespace {

std::string ScanAll(StateStore& s, std::string_view prefix = "") {
  std::string out, err;
  bool ok = s.Scan(prefix, [&](std::string_view k, std::string_view v) {
    out.append(k);
    out += '=';
    out.append(v);
    out += '\n';
    return true;
  }, &err);
  if (!ok) return "error: " + err;
  return out;
}

// The same behaviour is expected of every store.
void ExerciseStore(StateStore& s) {
  std::string err;
  StateDelta d;
  d.puts = {{"g/r1/a", "1"}, {"g/r1/b", "2"}, {"g/r2/a", "3"}, {"m/x", "4"},
            {std::string("g/\xff\xff", 4), "ff"}, {std::string("g/\xff\xff\x01", 5), "ff1"}};
  REQUIRE(s.Write(d, &err));
  CHECK(ScanAll(s, "g/r1/") == "g/r1/a=1\ng/r1/b=2\n");
  CHECK(ScanAll(s, "m/") == "m/x=4\n");

  // Scan stops when the callback says so.
  int seen = 0;
  REQUIRE(s.Scan("g/", [&](std::string_view, std::string_view) { return ++seen < 2; }, &err));
  CHECK(seen == 2);

  // One batch: prefix deletes first, then deletes, then puts (a rule cleared and rewritten).
  StateDelta d2;
  d2.delete_prefixes = {"g/r1/"};
  d2.deletes = {"m/x", "missing"};
  d2.puts = {{"g/r1/c", "5"}};
  REQUIRE(s.Write(d2, &err));
  CHECK(ScanAll(s, "g/r") == "g/r1/c=5\ng/r2/a=3\n");
  CHECK(ScanAll(s, "m/") == "");

  // A prefix of 0xFF bytes has no successor: still only its own keys go.
  StateDelta d3;
  d3.delete_prefixes = {std::string("g/\xff\xff", 4)};
  REQUIRE(s.Write(d3, &err));
  CHECK(ScanAll(s, "g/") == "g/r1/c=5\ng/r2/a=3\n");

  std::string v;
  bool found = true;
  REQUIRE(s.Get("g/r2/a", &v, &found, &err));
  CHECK(found);
  CHECK(v == "3");
  REQUIRE(s.Get("g/r2/zz", &v, &found, &err));
  CHECK_FALSE(found);
  REQUIRE(s.Put("m/seq", "7", true, &err));
  REQUIRE(s.Get("m/seq", &v, &found, &err));
  CHECK((found && v == "7"));
  // Binary keys and values survive.
  std::string bin("k\0\x01", 3), binv("\0\xff", 2);
  REQUIRE(s.Put(bin, binv, false, &err));
  REQUIRE(s.Get(bin, &v, &found, &err));
  CHECK(v == binv);
}

}  // namespace

TEST_CASE("state: PrefixSuccessor") {
  CHECK(PrefixSuccessor("g/a") == "g/b");
  CHECK(PrefixSuccessor(std::string("g/\xff", 3)) == "g0");
  CHECK(PrefixSuccessor(std::string("\xff\xff", 2)) == "");
  CHECK(PrefixSuccessor("") == "");
}

TEST_CASE("state: MemStateStore") {
  MemStateStore s;
  ExerciseStore(s);
}

TEST_CASE("state: RocksStateStore write, scan, delete-prefix, reopen") {
  TempDir dir;
  std::string err;
  {
    auto s = RocksStateStore::Open(dir / "db", &err);
    REQUIRE(s != nullptr);
    ExerciseStore(*s);
    // A second open of the same directory is refused while the first holds the lock.
    std::string err2;
    CHECK(RocksStateStore::Open(dir / "db", &err2) == nullptr);
    CHECK(err2.find("cannot open state store in '" + dir / "db" + "'") == 0);
  }
  auto s = RocksStateStore::Open(dir / "db", &err);
  REQUIRE(s != nullptr);
  CHECK(ScanAll(*s, "g/") == "g/r1/c=5\ng/r2/a=3\n");
}

TEST_CASE("state: RocksStateStore paces RocksDB's background writes as asked") {
  TempDir dir;
  std::string err;
  {
    auto s = RocksStateStore::Open(dir / "default", &err);
    REQUIRE(s != nullptr);
    CHECK(s->background_write_limit() == int64_t{64} << 20);  // StoreOptions' default
  }
  StoreOptions opts;
  opts.background_write_bytes_per_s = int64_t{8} << 20;
  {
    auto s = RocksStateStore::Open(dir / "db", opts, &err);
    REQUIRE(s != nullptr);
    CHECK(s->background_write_limit() == int64_t{8} << 20);
    ExerciseStore(*s);  // the limit changes when RocksDB writes, not what it stores
  }
  opts.background_write_bytes_per_s = 0;  // no limiter at all
  auto s = RocksStateStore::Open(dir / "db", opts, &err);
  REQUIRE(s != nullptr);
  CHECK(s->background_write_limit() == 0);
  CHECK(ScanAll(*s, "g/") == "g/r1/c=5\ng/r2/a=3\n");
}

TEST_CASE("state: RocksStateStore reports its write health; a reopen's flush shows in level 0") {
  TempDir dir;
  std::string err;
  {
    auto s = RocksStateStore::Open(dir / "db", &err);
    REQUIRE(s != nullptr);
    ExerciseStore(*s);
    const StateStore::WriteHealth h = s->write_health();
    CHECK(h.known);
    // A few writes into an empty store: nothing held back, nothing flushed yet.
    CHECK(h.stall_micros == 0);
    for (int c = 0; c < StateStore::WriteHealth::kCauses; ++c) {
      CHECK(h.slowdowns[c] == 0);
      CHECK(h.stops[c] == 0);
    }
    CHECK_FALSE(h.stopped);
    CHECK(h.delayed_rate == 0);
    CHECK(h.l0_files == 0);
    CHECK(h.pending_compaction_bytes == 0);
  }
  // Reopening replays the write-ahead log and flushes what it held into a level-0 file.
  auto s = RocksStateStore::Open(dir / "db", &err);
  REQUIRE(s != nullptr);
  CHECK(s->write_health().l0_files == 1);
  // The wrappers pass it through; a store that cannot tell says so.
  FaultyStateStore faulty(s.get());
  CHECK(faulty.write_health().known);
  CHECK(faulty.write_health().l0_files == 1);
  MemStateStore mem;
  CHECK_FALSE(mem.write_health().known);
}

TEST_CASE("state: RocksStateStore reports a directory it cannot create") {
  std::string err;
  CHECK(RocksStateStore::Open("/proc/vigie-cannot/db", &err) == nullptr);
  CHECK(err.find("cannot create state directory") == 0);
}

TEST_CASE("state: FaultyStateStore injects failures and counts calls") {
  MemStateStore mem;
  FaultyStateStore f(&mem);
  std::string err;
  StateDelta d;
  d.puts = {{"a", "1"}};
  REQUIRE(f.Write(d, &err));
  f.fail_writes = true;
  CHECK_FALSE(f.Write(d, &err));
  CHECK(err == "injected write failure");
  CHECK_FALSE(f.Put("b", "2", true, &err));
  f.fail_reads = true;
  std::string v;
  bool found;
  CHECK_FALSE(f.Get("a", &v, &found, &err));
  CHECK_FALSE(f.Scan("", [](std::string_view, std::string_view) { return true; }, &err));
  CHECK(f.write_calls == 2);
  CHECK(f.put_calls == 1);
  CHECK(f.failed_writes == 2);
  CHECK(mem.Dump() == "a=1\n");
}

TEST_CASE("state: MergedDelta keeps deltas in order, then merges them keeping the last word") {
  // Two deltas whose order matters: b drops a's g/2/y by prefix, deletes a's g/3/z and puts back
  // a key a deleted.
  auto make_a = [] {
    StateDelta a;
    a.puts = {{"g/1/x", "old"}, {"g/2/y", "y"}, {"g/3/z", "z"}, {"g/4/gone", "0"}};
    a.deletes = {"g/4/gone"};
    return a;
  };
  auto make_b = [] {
    StateDelta b;
    b.delete_prefixes = {"g/2/"};
    b.deletes = {"g/3/z"};
    b.puts = {{"g/1/x", "new"}, {"g/4/gone", "back"}, {"g/2/fresh", "f"}};
    return b;
  };
  MemStateStore direct;
  std::string err;
  direct.Write(make_a(), &err);
  direct.Write(make_b(), &err);

  SECTION("few deltas are queued as they came and written in one batch") {
    MergedDelta m;
    m.Merge(make_a());
    m.Merge(make_b());
    std::vector<StateDelta> t = m.Take();
    CHECK(m.empty());
    REQUIRE(t.size() == 2);
    MemStateStore merged;
    REQUIRE(merged.WriteAll(t.data(), t.size(), &err));
    CHECK(merged.Dump() == direct.Dump());
  }
  SECTION("past kMaxQueued deltas, the maps keep one entry per key") {
    MergedDelta m;
    // Padding deltas (each puts one key later overwritten by b), then a and b.
    for (size_t i = 0; i + 1 < MergedDelta::kMaxQueued; ++i) {
      StateDelta pad;
      pad.puts = {{"g/1/x", "pad" + std::to_string(i)}};
      m.Merge(std::move(pad));
    }
    m.Merge(make_a());
    REQUIRE(m.queued.size() == MergedDelta::kMaxQueued);
    m.Merge(make_b());
    CHECK(m.merged);
    CHECK(m.queued.empty());
    std::vector<StateDelta> t = m.Take();
    CHECK(m.empty());
    REQUIRE(t.size() == 1);
    CHECK(t[0].delete_prefixes == std::vector<std::string>{"g/2/"});
    CHECK(t[0].deletes == std::vector<std::string>{"g/3/z", "g/4/gone"});  // put back after
    REQUIRE(t[0].puts.size() == 3);
    CHECK((t[0].puts[0] == vigie::rules::PutList::Entry{"g/1/x", "new"}));
    CHECK((t[0].puts[1] == vigie::rules::PutList::Entry{"g/2/fresh", "f"}));
    CHECK((t[0].puts[2] == vigie::rules::PutList::Entry{"g/4/gone", "back"}));
    MemStateStore merged;
    REQUIRE(merged.WriteAll(t.data(), t.size(), &err));
    CHECK(merged.Dump() == direct.Dump());
  }
}

TEST_CASE("state: checkpointer writes deltas and flushes", "[concurrency]") {
  MemStateStore mem;
  Checkpointer cp(&mem, nullptr);
  cp.Start();
  for (int shard = 0; shard < 3; ++shard) {
    StateDelta d;
    d.puts = {{"g/s" + std::to_string(shard), "v"}};
    cp.Submit(shard, std::move(d));
  }
  cp.Submit(1, StateDelta{});  // empty: ignored
  REQUIRE(cp.Flush(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  CHECK(mem.Dump() == "g/s0=v\ng/s1=v\ng/s2=v\n");
  CHECK(cp.pending_deltas() == 0);
  // Nothing pending: Flush returns at once.
  CHECK(cp.Flush(std::chrono::steady_clock::now()));

  MetricsWriter w;
  cp.Collect(w);
  std::string text = w.Render();
  CHECK(text.find("vigie_checkpoint_duration_seconds_count ") != std::string::npos);
  CHECK(text.find("vigie_checkpoint_failures_total 0\n") != std::string::npos);
  CHECK(text.find("vigie_checkpoint_pending_deltas 0\n") != std::string::npos);
  CHECK(text.find("vigie_checkpoint_bytes_total 15\n") != std::string::npos);  // 3 x (key 4 + value 1)
  CHECK(text.find("vigie_checkpoint_last_success_timestamp_seconds 0\n") == std::string::npos);
}

TEST_CASE("state: checkpointer keeps deltas through failures, retries, then succeeds", "[concurrency]") {
  MemStateStore mem;
  FaultyStateStore faulty(&mem);
  faulty.fail_writes = true;
  std::vector<std::string> logged;
  Logger log([&](std::string_view l) { logged.emplace_back(l); });
  CheckpointerOptions opts;
  opts.retry_min_ms = 1;
  opts.retry_max_ms = 4;
  Checkpointer cp(&faulty, &log, opts);
  cp.Start();

  StateDelta d1;
  d1.puts = {{"g/a", "1"}, {"g/b", "1"}};
  cp.Submit(0, std::move(d1));
  REQUIRE(WaitFor([&] { return cp.failures() >= 3; }));
  // Later deltas merge into the kept one.
  StateDelta d2;
  d2.puts = {{"g/a", "2"}};
  d2.deletes = {"g/b"};
  cp.Submit(0, std::move(d2));
  StateDelta d3;
  d3.puts = {{"g/c", "3"}};
  cp.Submit(1, std::move(d3));
  CHECK_FALSE(cp.Flush(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  CHECK(cp.pending_deltas() == 3);
  CHECK(mem.Dump() == "");

  faulty.fail_writes = false;
  REQUIRE(cp.Flush(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  CHECK(mem.Dump() == "g/a=2\ng/c=3\n");
  CHECK(cp.pending_deltas() == 0);
  CHECK(cp.writes() == 2);
  REQUIRE(!logged.empty());
  CHECK(logged[0].find("ERROR checkpoint: shard 0: state write failed (injected write failure)") !=
        std::string::npos);
  cp.Stop();
}

TEST_CASE("state: seq continues after a clean close", "[concurrency]") {
  MemStateStore mem;
  std::string err;
  {
    SeqAllocator seq(10);
    REQUIRE(seq.Open(&mem, &err));
    for (uint64_t i = 1; i <= 25; ++i) REQUIRE(seq.Next() == i);
    REQUIRE(seq.Close(&err));
  }
  SeqAllocator seq(10);
  REQUIRE(seq.Open(&mem, &err));
  CHECK(seq.Next() == 26);
  CHECK(seq.Next() == 27);
}

TEST_CASE("state: seq never repeats after a crash (no Close), and skips at most a block") {
  TempDir dir;
  std::string err;
  std::set<uint64_t> handed;
  uint64_t last = 0;
  for (int run = 0; run < 4; ++run) {
    auto store = RocksStateStore::Open(dir / "db", &err);
    REQUIRE(store != nullptr);
    SeqAllocator seq(100);
    REQUIRE(seq.Open(store.get(), &err));
    for (int i = 0; i < 150; ++i) {
      uint64_t s = seq.Next();
      REQUIRE(s > last);
      // The reservation written ahead is at most a block past the numbers handed out: after a
      // crash (runs 1, 2) the jump is at most 100; after the clean stop (run 3), none.
      if (i == 0 && run == 3) CHECK(s == last + 1);
      if (i == 0) CHECK(s <= last + 1 + 100);
      REQUIRE(handed.insert(s).second);
      last = s;
    }
    if (run == 2) REQUIRE(seq.Close(&err));  // one clean stop among crashes
    // Otherwise dropped without Close: a crash as far as the store can tell.
  }
  CHECK(handed.size() == 600);
  CHECK(*handed.begin() == 1);
}

TEST_CASE("state: seq reports a failed reservation and hands out nothing", "[concurrency]") {
  MemStateStore mem;
  FaultyStateStore faulty(&mem);
  std::string err;
  SeqAllocator seq(4);
  REQUIRE(seq.Open(&faulty, &err));
  faulty.fail_writes = true;
  CHECK(seq.Next() == 0);  // the first reservation fails: nothing is handed out
  CHECK(seq.last_error().find("injected write failure") != std::string::npos);
  faulty.fail_writes = false;
  CHECK(seq.Next() == 1);  // asked again: reserved up to 5
  faulty.fail_writes = true;
  CHECK(seq.Next() == 2);
  CHECK(seq.Next() == 3);  // half used: the next reservation is asked for, and fails
  CHECK(seq.Next() == 4);  // what was reserved is still handed out
  CHECK(seq.Next() == 0);  // then nothing
  CHECK(seq.Next() == 0);
  faulty.fail_writes = false;
  CHECK(seq.Next() == 5);
  std::string stored;
  bool found = false;
  REQUIRE(mem.Get("m/seq_reserved", &stored, &found, &err));
  REQUIRE(found);
  CHECK(std::stoull(stored) > 5);
}

namespace {

// A store whose Put of the seq reservation is held until the test opens the gate.
class GatedStore final : public StateStore {
 public:
  explicit GatedStore(StateStore* inner) : inner_(inner) {}
  bool WriteAll(const vigie::rules::StateDelta* d, size_t n, std::string* error) override {
    return inner_->WriteAll(d, n, error);
  }
  bool Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn,
            std::string* error) override {
    return inner_->Scan(prefix, fn, error);
  }
  bool Get(std::string_view key, std::string* value, bool* found, std::string* error) override {
    return inner_->Get(key, value, found, error);
  }
  bool Put(std::string_view key, std::string_view value, bool sync, std::string* error) override {
    if (key == "m/seq_reserved") {
      std::unique_lock<std::mutex> lk(mu_);
      held_.push_back(std::string(value));
      cv_.notify_all();
      cv_.wait(lk, [&] { return open_; });
    }
    return inner_->Put(key, value, sync, error);
  }
  uint64_t ApproximateBytes() const override { return inner_->ApproximateBytes(); }
  void SetOpen(bool open) {
    std::lock_guard<std::mutex> lk(mu_);
    open_ = open;
    cv_.notify_all();
  }
  // The reservations whose write began, in order.
  std::vector<std::string> held() {
    std::lock_guard<std::mutex> lk(mu_);
    return held_;
  }

 private:
  StateStore* inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  std::vector<std::string> held_;
};

}  // namespace

TEST_CASE("state: seq writes the next reservation ahead, without stopping the caller",
          "[concurrency]") {
  MemStateStore mem;
  GatedStore gated(&mem);
  std::string err;
  SeqAllocator seq(10);
  REQUIRE(seq.Open(&gated, &err));
  CHECK(seq.Next() == 1);  // nothing was reserved: waits for the write of 11
  REQUIRE(gated.held() == std::vector<std::string>{"11"});
  gated.SetOpen(false);
  for (uint64_t i = 2; i <= 6; ++i) CHECK(seq.Next() == i);
  // 5 of 10 left after 6: the write of 6 + 10 began, and is held.
  REQUIRE(WaitFor([&] { return gated.held().size() == 2; }));
  CHECK(gated.held()[1] == "16");
  // The caller goes on with what is reserved while that write is held...
  for (uint64_t i = 7; i <= 10; ++i) CHECK(seq.Next() == i);
  // ...and waits for it only when none is left.
  auto eleven = std::async(std::launch::async, [&] { return seq.Next(); });
  gated.SetOpen(true);
  REQUIRE(eleven.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(eleven.get() == 11);
  REQUIRE(seq.Close(&err));
  std::string stored;
  bool found = false;
  REQUIRE(mem.Get("m/seq_next", &stored, &found, &err));
  CHECK(stored == "12");
}
