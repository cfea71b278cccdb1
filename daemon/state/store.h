#pragma once
// StateStore: where durable engine state and daemon metadata live (INTERFACES.md "State").
// Keys and values are opaque bytes. Key spaces: "g/..." engine groups (rules::Engine),
// "m/..." daemon metadata (seq allocator).
//
// Implementations (storage behind an interface, as leveldb's Env):
//   RocksStateStore  RocksDB in a directory: the daemon's store.
//   MemStateStore    std::map: unit tests.
//   FaultyStateStore wraps another store and injects failures and delays: tests.
// All three are thread-safe (any method from any thread).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "rules/engine.h"

namespace vigie::daemon {

class StateStore {
 public:
  virtual ~StateStore();
  // Applies the delta atomically (one batch), in this order: delete_prefixes, then deletes,
  // then puts — so a delta may clear a rule's prefix and write its fresh state. Not synced to
  // disk (the WAL survives kill -9, not a power loss).
  bool Write(const rules::StateDelta& delta, std::string* error) { return WriteAll(&delta, 1, error); }
  // Applies n deltas, oldest first, each in the order above, atomically as one batch: the
  // effect of n Write() calls without merging them first.
  virtual bool WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) = 0;
  // Calls fn for every key starting with `prefix`, in key order, until fn returns false.
  virtual bool Scan(std::string_view prefix,
                    const std::function<bool(std::string_view key, std::string_view value)>& fn,
                    std::string* error) = 0;
  virtual bool Get(std::string_view key, std::string* value, bool* found, std::string* error) = 0;
  // One key; sync=true waits until it is on disk (fsync of the WAL).
  virtual bool Put(std::string_view key, std::string_view value, bool sync, std::string* error) = 0;
  // Approximate size of the stored data (vigie_state_bytes); 0 if unknown.
  virtual uint64_t ApproximateBytes() const { return 0; }

  // Whether the store holds writes back, for /metrics. A store that cannot tell leaves known
  // false (the metrics are then not exported).
  struct WriteHealth {
    bool known = false;
    uint64_t stall_micros = 0;       // writes held back so far (slowed or stopped), cumulative
    // Times writes began to be slowed / stopped, cumulative, by cause: too many memtables
    // waiting for their flush, too many level-0 files, too much compaction debt.
    enum Cause { kMemtables, kLevel0, kCompactionDebt, kCauses };
    static const char* CauseName(int c);  // "memtables", "level0", "compaction_debt"
    uint64_t slowdowns[kCauses] = {};
    uint64_t stops[kCauses] = {};
    bool stopped = false;            // writes are stopped now
    uint64_t delayed_rate = 0;       // bytes/s writes are held to now; 0: not slowed
    uint64_t l0_files = 0;           // files in level 0 (too many slows writes, then stops them)
    uint64_t pending_compaction_bytes = 0;  // compaction debt (too much slows writes too)
  };
  virtual WriteHealth write_health() const { return {}; }
};

// The first key after every key that starts with `prefix` ("" if there is none: prefix is all
// 0xFF bytes or empty).
std::string PrefixSuccessor(std::string_view prefix);

// Tuning of a RocksStateStore.
struct StoreOptions {
  // Bytes per second that RocksDB's flushes and compactions may write (config:
  // state_write_mib_per_s). A rate limiter paces them in 20 ms steps, so that a flush (sorting
  // and writing 32 MiB of memtables) does not take a core from the shards in one burst; 0 = no
  // limit. The write-ahead log, which checkpoints write, is never limited. bench/PROFILE.md
  // ("Paced background writes"): with the 200-rule set at 140 000 events/s, p99.9 8.5-46 ms
  // without, 6.9-7.2 ms at 64 MiB/s (three alternated pairs); the maximum rate with 1 M
  // devices writes ~27 MB/s to disk in all, well under the limit, and did not fall.
  int64_t background_write_bytes_per_s = int64_t{64} << 20;
};

class RocksStateStore final : public StateStore {
 public:
  // Opens (creating if needed) the database in `dir` (created too, with its parents). Fails
  // with a clear message, e.g. when another process holds the lock.
  static std::unique_ptr<RocksStateStore> Open(const std::string& dir, std::string* error) {
    return Open(dir, StoreOptions(), error);
  }
  static std::unique_ptr<RocksStateStore> Open(const std::string& dir, const StoreOptions& opts,
                                               std::string* error);
  // The background write limit in force, read back from RocksDB (bytes per second; 0: none).
  int64_t background_write_limit() const;
  ~RocksStateStore() override;

  bool WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) override;
  bool Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn,
            std::string* error) override;
  bool Get(std::string_view key, std::string* value, bool* found, std::string* error) override;
  bool Put(std::string_view key, std::string_view value, bool sync, std::string* error) override;
  uint64_t ApproximateBytes() const override;
  // From RocksDB's own statistics (db.user_write_stall_micros, the io_stalls counters,
  // is-write-stopped, actual-delayed-write-rate, num-files-at-level0,
  // estimate-pending-compaction-bytes).
  WriteHealth write_health() const override;

 private:
  struct Impl;
  explicit RocksStateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class MemStateStore final : public StateStore {
 public:
  bool WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) override;
  bool Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn,
            std::string* error) override;
  bool Get(std::string_view key, std::string* value, bool* found, std::string* error) override;
  bool Put(std::string_view key, std::string_view value, bool sync, std::string* error) override;
  uint64_t ApproximateBytes() const override;

  // "key=value\n" for every entry in key order (non-printable bytes as \xNN): tests compare it.
  std::string Dump() const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> data_;
};

// Wraps `inner` (not owned; must outlive this). Switches may be flipped from any thread.
class FaultyStateStore final : public StateStore {
 public:
  explicit FaultyStateStore(StateStore* inner) : inner_(inner) {}

  std::atomic<bool> fail_writes{false};   // Write and Put return "injected write failure"
  std::atomic<bool> fail_reads{false};    // Get and Scan return "injected read failure"
  std::atomic<int> write_delay_ms{0};     // Write and Put sleep this long first

  std::atomic<uint64_t> write_calls{0};   // every call, failed or not
  std::atomic<uint64_t> put_calls{0};
  std::atomic<uint64_t> failed_writes{0}; // Write + Put that returned false
  std::atomic<uint64_t> get_calls{0};
  std::atomic<uint64_t> scan_calls{0};

  bool WriteAll(const rules::StateDelta* deltas, size_t n, std::string* error) override;
  bool Scan(std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn,
            std::string* error) override;
  bool Get(std::string_view key, std::string* value, bool* found, std::string* error) override;
  bool Put(std::string_view key, std::string_view value, bool sync, std::string* error) override;
  uint64_t ApproximateBytes() const override { return inner_->ApproximateBytes(); }
  WriteHealth write_health() const override { return inner_->write_health(); }

 private:
  StateStore* inner_;
};

}  // namespace vigie::daemon
