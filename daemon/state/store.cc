#include "daemon/state/store.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/rate_limiter.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "daemon/state/memtable.h"

namespace vigie::daemon {

StateStore::~StateStore() = default;

std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    unsigned char c = static_cast<unsigned char>(s.back());
    if (c != 0xFF) {
      s.back() = static_cast<char>(c + 1);
      return s;
    }
    s.pop_back();
  }
  return s;  // empty: no successor
}

static bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------- RocksDB

namespace {
rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }
}  // namespace

struct RocksStateStore::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::string dir;
};

RocksStateStore::RocksStateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RocksStateStore::~RocksStateStore() {
  if (impl_ && impl_->db) {
    // Flush the memtables first: a clean stop then leaves no write-ahead log to replay, and the
    // next start opens in a fraction of the time (measured in bench/STATE.md: 3 s -> 0.3 s for a
    // 150 MB checkpoint of 1M groups). Best effort: a failure here loses nothing (the WAL stays).
    impl_->db->Flush(rocksdb::FlushOptions()).PermitUncheckedError();
    impl_->db->Close().PermitUncheckedError();
  }
}

namespace {

// RocksDB's flushes and compactions are bursts of CPU (sorting and writing three 16 MiB memtables)
// that should not take a core from a shard that has events: at 60 000 events/s they added
// ~18 ms to the p99 latency on two cores. Their threads run at nice 10 (CFS weight 110 against
// 1024): a waking shard preempts them, yet under full load they still get a share, so flushes
// keep up and checkpoint writes do not stall. (Env::LowerThreadPoolCPUPriority only offers
// nice 19, which starved flushes at full load: checkpoint writes fell 7 s behind.) The listener
// is called on the background thread itself, before its first flush or compaction.
class BackgroundNice final : public rocksdb::EventListener {
 public:
  static constexpr int kNice = 10;
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { Lower(); }
  void OnCompactionBegin(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { Lower(); }

 private:
  static void Lower() {
    thread_local bool done = false;  // once per background thread
    if (done) return;
    done = true;
    // Linux: a thread's nice value is per task (tid). Best effort: an error changes nothing.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kNice);
  }
};

}  // namespace

std::unique_ptr<RocksStateStore> RocksStateStore::Open(const std::string& dir,
                                                       const StoreOptions& store_opts,
                                                       std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create state directory '" + dir + "': " + ec.message();
    return nullptr;
  }
  rocksdb::Options opts;
  opts.create_if_missing = true;
  // A small box: few background threads, modest memtables and cache, few open files.
  opts.IncreaseParallelism(2);
  opts.max_background_jobs = 2;
  opts.write_buffer_size = 16 << 20;
  // Checkpoints rewrite most groups every interval and nothing reads the memtable but the scan
  // at start-up: an append-only memtable, sorted once when it is flushed, costs less per put
  // than the default skip list (no ordered insert, no key comparisons on the checkpoint
  // thread). Its sort keeps the keys' leading bytes in the array it sorts (memtable.h): RocksDB's
  // own VectorRep compared through pointers into the arena, and its sort was 8 % of the
  // daemon's CPU with the 200-rule bench set (bench/PROFILE.md).
  opts.memtable_factory = NewSortOnceMemTableFactory();
  // Three full memtables are flushed together, into one L0 file: a flush keeps only the last
  // copy of each key, and checkpoints rewrite the same keys every interval, so the more
  // checkpoints one flush spans, the fewer bytes it writes and the fewer later compactions
  // rewrite. Three of 16 MiB span about 1.8 s of the 200-rule bench set at 140 000 events/s
  // (27 MB/s of checkpoints); two spanned 1.2 s. Against two, 40 s runs of
  // bench/cpu-per-event.sh at that load: RocksDB's flushes 1.17-1.19 -> 1.01-1.03 us of CPU per
  // event, compactions 0.39 -> 0.23-0.24; peak RSS 496-522 -> 529-535 MiB, and 835-841 -> 850
  // MiB with the city rules and a million devices (816 000 groups). Three of 32 MiB cut
  // RocksDB's share further (flushes 0.90, compactions 0.08) but cost 75 MiB more (914 MiB
  // with the million devices): too close to the 1 GiB a million groups must fit in.
  // L0->L1 compactions wait for 8 L0 files instead of 4: every compaction rewrites nearly the
  // whole state, since nearly every group changed, so half as many of them halve the bytes
  // rewritten. The price: 8 L0 files on disk before a compaction; nothing reads them but the
  // start-up scan.
  // RocksDB slows writes once max_write_buffer_number - 1 memtables wait for a flush, and stops
  // them at max_write_buffer_number. A flush that took longer than filling the memtables left
  // spare (a niced, paced flush on a busy two-core box) held the checkpoint writes back: with 4
  // memtables, two merged per flush, the 200-rule set at 140 000 events/s stalled them
  // 0.06-0.33 s in 12 s (vigie_state_write_stall_seconds_total), and the slowest events' latency
  // rose with it (p99.9 19.8 / 32.3 / 235 / 8.4 / 22.3 ms against 9.9 / 17.2 / 24.0 / 7.3 /
  // 20.4 with 6, five alternated pairs). With 7 and three merged, three spare memtables (48 MiB,
  // 1.8 s of that load) while a flush runs, as before; up to 112 MiB of memtables, only while
  // flushes are behind.
  opts.min_write_buffer_number_to_merge = 3;
  opts.max_write_buffer_number = 7;
  opts.level0_file_num_compaction_trigger = 8;
  opts.allow_concurrent_memtable_write = false;
  opts.max_open_files = 512;
  opts.keep_log_file_num = 3;
  opts.max_log_file_size = 8 << 20;
  opts.max_total_wal_size = 64 << 20;
  opts.compression = rocksdb::kNoCompression;
  for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
    if (t == rocksdb::kLZ4Compression) opts.compression = t;
  }
  if (opts.compression == rocksdb::kNoCompression) {
    for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
      if (t == rocksdb::kSnappyCompression) opts.compression = t;
    }
  }
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(32 << 20);
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  opts.listeners.push_back(std::make_shared<BackgroundNice>());
  // Nice 10 decides who runs when both want a core; it does not stop a flush from holding one
  // for the ~200 ms it takes, and on two cores the event path then has one core for a moment:
  // at 140 000 events/s with the 200-rule set, that made the p99.9 latency 8.5-46 ms. Paced at a
  // rate well above what the state needs on average (StoreOptions), the same work comes in
  // 20 ms steps. Writes only: the start-up scan reads at full speed.
  if (store_opts.background_write_bytes_per_s > 0) {
    opts.rate_limiter.reset(rocksdb::NewGenericRateLimiter(
        store_opts.background_write_bytes_per_s, /*refill_period_us=*/20 * 1000,
        /*fairness=*/10, rocksdb::RateLimiter::Mode::kWritesOnly, /*auto_tuned=*/false));
  }

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &raw);
  if (!s.ok()) {
    *error = "cannot open state store in '" + dir + "': " + s.ToString();
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      *error += " (is another vigie running with the same state_dir?)";
    }
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->db.reset(raw);
  impl->dir = dir;
  return std::unique_ptr<RocksStateStore>(new RocksStateStore(std::move(impl)));
}

namespace {
// Appends one delta to the batch in the store's order: prefixes, deletes, puts.
bool AddToBatch(rocksdb::DB* db, const rules::StateDelta& delta, rocksdb::WriteBatch* out,
                std::string* error) {
  rocksdb::WriteBatch& batch = *out;
  rocksdb::Status s;
  for (const std::string& prefix : delta.delete_prefixes) {
    std::string end = PrefixSuccessor(prefix);
    if (!end.empty()) {
      s = batch.DeleteRange(ToSlice(prefix), ToSlice(end));
    } else {
      // No successor (empty or all-0xFF prefix): delete key by key up to the end.
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      for (it->Seek(ToSlice(prefix)); it->Valid() && StartsWith(ToView(it->key()), prefix);
           it->Next()) {
        s = batch.Delete(it->key());
        if (!s.ok()) break;
      }
      if (s.ok()) s = it->status();
    }
    if (!s.ok()) {
      *error = "state write: " + s.ToString();
      return false;
    }
  }
  for (const std::string& k : delta.deletes) {
    s = batch.Delete(ToSlice(k));
    if (!s.ok()) break;
  }
  for (const auto& [k, v] : delta.puts) {
    if (!s.ok()) break;
    s = batch.Put(ToSlice(k), ToSlice(v));
  }
  if (!s.ok()) {
    *error = "state write: " + s.ToString();
    return false;
  }
  return true;
}
}  // namespace

bool RocksStateStore::WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) {
  rocksdb::WriteBatch batch;
  rocksdb::Status s;
  for (size_t i = 0; i < n && s.ok(); ++i) {
    if (!AddToBatch(impl_->db.get(), deltas[i], &batch, error)) return false;
  }
  s = impl_->db->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) {
    *error = "state write: " + s.ToString();
    return false;
  }
  return true;
}


bool RocksStateStore::Scan(std::string_view prefix,
                           const std::function<bool(std::string_view, std::string_view)>& fn,
                           std::string* error) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a scan is a recovery or admin pass, not a hot read
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    std::string_view k = ToView(it->key());
    if (!StartsWith(k, prefix)) break;
    if (!fn(k, ToView(it->value()))) break;
  }
  if (!it->status().ok()) {
    *error = "state scan: " + it->status().ToString();
    return false;
  }
  return true;
}

bool RocksStateStore::Get(std::string_view key, std::string* value, bool* found,
                          std::string* error) {
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), ToSlice(key), value);
  if (s.IsNotFound()) {
    *found = false;
    return true;
  }
  if (!s.ok()) {
    *error = "state get: " + s.ToString();
    return false;
  }
  *found = true;
  return true;
}

bool RocksStateStore::Put(std::string_view key, std::string_view value, bool sync,
                          std::string* error) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = impl_->db->Put(wo, ToSlice(key), ToSlice(value));
  if (!s.ok()) {
    *error = "state put: " + s.ToString();
    return false;
  }
  return true;
}

int64_t RocksStateStore::background_write_limit() const {
  const rocksdb::Options opts = impl_->db->GetOptions();
  return opts.rate_limiter ? opts.rate_limiter->GetBytesPerSecond() : 0;
}

uint64_t RocksStateStore::ApproximateBytes() const {
  uint64_t live = 0, mem = 0;
  impl_->db->GetIntProperty("rocksdb.estimate-live-data-size", &live);
  impl_->db->GetIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
  return live + mem;
}

const char* StateStore::WriteHealth::CauseName(int c) {
  static const char* const kNames[] = {"memtables", "level0", "compaction_debt"};
  return c >= 0 && c < kCauses ? kNames[c] : "other";
}

StateStore::WriteHealth RocksStateStore::write_health() const {
  rocksdb::DB* db = impl_->db.get();
  WriteHealth h;
  h.known = true;
  auto number = [](const std::map<std::string, std::string>& m, const char* key) -> uint64_t {
    auto it = m.find(key);
    // Written by RocksDB as integers ("12"), some cumulative ones as "12.000000" in other
    // versions: strtod reads both.
    return it == m.end() ? 0 : static_cast<uint64_t>(std::strtod(it->second.c_str(), nullptr));
  };
  std::map<std::string, std::string> m;
  if (db->GetMapProperty(rocksdb::DB::Properties::kDBStats, &m))
    h.stall_micros = number(m, "db.user_write_stall_micros");
  m.clear();
  if (db->GetMapProperty(rocksdb::DB::Properties::kCFStats, &m)) {
    h.slowdowns[WriteHealth::kMemtables] = number(m, "io_stalls.memtable_slowdown");
    h.slowdowns[WriteHealth::kLevel0] = number(m, "io_stalls.level0_slowdown");
    h.slowdowns[WriteHealth::kCompactionDebt] =
        number(m, "io_stalls.slowdown_for_pending_compaction_bytes");
    h.stops[WriteHealth::kMemtables] = number(m, "io_stalls.memtable_compaction");
    h.stops[WriteHealth::kLevel0] = number(m, "io_stalls.level0_numfiles");
    h.stops[WriteHealth::kCompactionDebt] =
        number(m, "io_stalls.stop_for_pending_compaction_bytes");
  }
  uint64_t v = 0;
  if (db->GetIntProperty("rocksdb.is-write-stopped", &v)) h.stopped = v != 0;
  if (db->GetIntProperty("rocksdb.actual-delayed-write-rate", &v)) h.delayed_rate = v;
  std::string text;  // a string property: GetIntProperty does not know it
  if (db->GetProperty("rocksdb.num-files-at-level0", &text))
    h.l0_files = std::strtoull(text.c_str(), nullptr, 10);
  if (db->GetIntProperty("rocksdb.estimate-pending-compaction-bytes", &v))
    h.pending_compaction_bytes = v;
  return h;
}

// ---------------------------------------------------------------- memory

bool MemStateStore::WriteAll(const rules::StateDelta* deltas, size_t n, std::string*) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < n; ++i) {
    const rules::StateDelta& delta = deltas[i];
    for (const std::string& prefix : delta.delete_prefixes) {
      auto it = data_.lower_bound(prefix);
      while (it != data_.end() && StartsWith(it->first, prefix)) it = data_.erase(it);
    }
    for (const std::string& k : delta.deletes) {
      auto it = data_.find(k);
      if (it != data_.end()) data_.erase(it);
    }
    for (const auto& [k, v] : delta.puts) data_.insert_or_assign(std::string(k), std::string(v));
  }
  return true;
}

bool MemStateStore::Scan(std::string_view prefix,
                         const std::function<bool(std::string_view, std::string_view)>& fn,
                         std::string*) {
  // Copy first so fn may call back into the store.
  std::vector<std::pair<std::string, std::string>> items;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = data_.lower_bound(prefix); it != data_.end() && StartsWith(it->first, prefix);
         ++it) {
      items.emplace_back(it->first, it->second);
    }
  }
  for (const auto& [k, v] : items) {
    if (!fn(k, v)) break;
  }
  return true;
}

bool MemStateStore::Get(std::string_view key, std::string* value, bool* found, std::string*) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = data_.find(key);
  *found = it != data_.end();
  if (*found) *value = it->second;
  return true;
}

bool MemStateStore::Put(std::string_view key, std::string_view value, bool, std::string*) {
  std::lock_guard<std::mutex> lock(mu_);
  data_[std::string(key)] = std::string(value);
  return true;
}

uint64_t MemStateStore::ApproximateBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& [k, v] : data_) n += k.size() + v.size();
  return n;
}

size_t MemStateStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return data_.size();
}

std::string MemStateStore::Dump() const {
  static const char kHex[] = "0123456789abcdef";
  auto append = [](std::string* out, std::string_view s) {
    for (unsigned char c : s) {
      if (c >= 0x20 && c < 0x7F && c != '\\') {
        *out += static_cast<char>(c);
      } else {
        *out += "\\x";
        *out += kHex[c >> 4];
        *out += kHex[c & 15];
      }
    }
  };
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [k, v] : data_) {
    append(&out, k);
    out += '=';
    append(&out, v);
    out += '\n';
  }
  return out;
}

// ---------------------------------------------------------------- faults

namespace {
void Delay(const std::atomic<int>& ms) {
  int d = ms.load();
  if (d > 0) std::this_thread::sleep_for(std::chrono::milliseconds(d));
}
}  // namespace

bool FaultyStateStore::WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) {
  write_calls.fetch_add(1);
  Delay(write_delay_ms);
  if (fail_writes.load()) {
    failed_writes.fetch_add(1);
    *error = "injected write failure";
    return false;
  }
  bool ok = inner_->WriteAll(deltas, n, error);
  if (!ok) failed_writes.fetch_add(1);
  return ok;
}

bool FaultyStateStore::Put(std::string_view key, std::string_view value, bool sync,
                           std::string* error) {
  put_calls.fetch_add(1);
  Delay(write_delay_ms);
  if (fail_writes.load()) {
    failed_writes.fetch_add(1);
    *error = "injected write failure";
    return false;
  }
  bool ok = inner_->Put(key, value, sync, error);
  if (!ok) failed_writes.fetch_add(1);
  return ok;
}

bool FaultyStateStore::Scan(std::string_view prefix,
                            const std::function<bool(std::string_view, std::string_view)>& fn,
                            std::string* error) {
  scan_calls.fetch_add(1);
  if (fail_reads.load()) {
    *error = "injected read failure";
    return false;
  }
  return inner_->Scan(prefix, fn, error);
}

bool FaultyStateStore::Get(std::string_view key, std::string* value, bool* found,
                           std::string* error) {
  get_calls.fetch_add(1);
  if (fail_reads.load()) {
    *error = "injected read failure";
    return false;
  }
  return inner_->Get(key, value, found, error);
}

}  // namespace vigie::daemon
