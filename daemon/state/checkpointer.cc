#include "daemon/state/checkpointer.h"

#include <pthread.h>

#include <algorithm>

namespace vigie::daemon {

namespace {
bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

template <typename Container>
void EraseWithPrefix(Container* c, const std::string& prefix) {
  auto it = c->lower_bound(prefix);
  while (it != c->end()) {
    const std::string& k = [&]() -> const std::string& {
      if constexpr (std::is_same_v<Container, std::set<std::string>>) return *it;
      else return it->first;
    }();
    if (!StartsWith(k, prefix)) break;
    it = c->erase(it);
  }
}

uint64_t DeltaBytes(const std::vector<rules::StateDelta>& ds) {
  uint64_t n = 0;
  for (const rules::StateDelta& d : ds) {
    n += d.puts.byte_size();
    for (const auto& k : d.deletes) n += k.size();
    for (const auto& p : d.delete_prefixes) n += p.size();
  }
  return n;
}
}  // namespace

void MergedDelta::Merge(rules::StateDelta&& newer) {
  if (newer.empty()) return;
  if (!merged && queued.size() < kMaxQueued) {
    queued.push_back(std::move(newer));
    newer.clear();
    return;
  }
  if (!merged) {
    merged = true;
    for (rules::StateDelta& d : queued) MergeIntoMaps(std::move(d));
    queued.clear();
  }
  MergeIntoMaps(std::move(newer));
}

void MergedDelta::MergeIntoMaps(rules::StateDelta&& newer) {
  // Same order as the store applies a delta: prefixes, deletes, puts.
  for (std::string& p : newer.delete_prefixes) {
    EraseWithPrefix(&puts, p);
    EraseWithPrefix(&deletes, p);
    EraseWithPrefix(&delete_prefixes, p);  // subsumed (or equal)
    delete_prefixes.insert(std::move(p));
  }
  for (std::string& k : newer.deletes) {
    puts.erase(k);
    deletes.insert(std::move(k));
  }
  for (const auto& [k, v] : newer.puts) puts.insert_or_assign(std::string(k), std::string(v));
  newer.clear();
}

std::vector<rules::StateDelta> MergedDelta::Take() {
  std::vector<rules::StateDelta> out;
  if (!merged) {
    out.swap(queued);
    return out;
  }
  merged = false;
  rules::StateDelta& d = out.emplace_back();
  d.delete_prefixes.reserve(delete_prefixes.size());
  while (!delete_prefixes.empty()) {
    d.delete_prefixes.push_back(std::move(delete_prefixes.extract(delete_prefixes.begin()).value()));
  }
  d.deletes.reserve(deletes.size());
  while (!deletes.empty()) d.deletes.push_back(std::move(deletes.extract(deletes.begin()).value()));
  for (const auto& [k, v] : puts) d.puts.push_back({k, v});
  puts.clear();
  return out;
}

Checkpointer::Checkpointer(StateStore* store, Logger* log, CheckpointerOptions opts)
    : store_(store), log_(log), opts_(opts), failure_log_(log, 1) {}

Checkpointer::~Checkpointer() { Stop(); }

void Checkpointer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "vg-checkpoint");  // for top -H, perf and gdb
    Run();
  });
}

void Checkpointer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  done_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Checkpointer::Slot& Checkpointer::SlotFor(int shard) { return slots_[shard]; }

void Checkpointer::Submit(int shard, rules::StateDelta&& delta) {
  if (delta.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& s = SlotFor(shard);
    s.pending.Merge(std::move(delta));
    s.pending_gen = s.submitted_gen = ++next_gen_;
    ++s.pending_count;
    ++pending_deltas_;
  }
  work_cv_.notify_one();
}

bool Checkpointer::Flush(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<std::pair<int, uint64_t>> targets;
  for (const auto& [shard, s] : slots_) {
    if (s.written_gen < s.submitted_gen) targets.emplace_back(shard, s.submitted_gen);
  }
  auto done = [&] {
    for (const auto& [shard, gen] : targets) {
      if (slots_[shard].written_gen < gen) return false;
    }
    return true;
  };
  return done_cv_.wait_until(lock, deadline, [&] { return done() || stop_; }) && done();
}

size_t Checkpointer::pending_deltas() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_deltas_;
}

void Checkpointer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Next shard with pending data, round robin after the last one written.
    Slot* slot = nullptr;
    int shard = 0;
    if (!slots_.empty()) {
      auto it = slots_.upper_bound(last_shard_);
      for (size_t n = 0; n < slots_.size(); ++n, ++it) {
        if (it == slots_.end()) it = slots_.begin();
        if (!it->second.pending.empty()) {
          slot = &it->second;
          shard = it->first;
          break;
        }
      }
    }
    if (stop_) return;
    if (slot == nullptr) {
      work_cv_.wait(lock);
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    if (now < retry_at_) {
      work_cv_.wait_until(lock, retry_at_);
      continue;
    }
    last_shard_ = shard;
    std::vector<rules::StateDelta> delta = slot->pending.Take();
    uint64_t gen = slot->pending_gen;
    size_t count = slot->pending_count;
    slot->pending_count = 0;
    lock.unlock();

    uint64_t bytes = DeltaBytes(delta);
    std::string error;
    auto t0 = std::chrono::steady_clock::now();
    bool ok = store_->WriteAll(delta.data(), delta.size(), &error);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    lock.lock();
    Slot& s = slots_[shard];
    if (ok) {
      duration_.Observe(seconds);
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      writes_.fetch_add(1, std::memory_order_relaxed);
      last_success_unix_s_.store(
          std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
              .count(),
          std::memory_order_relaxed);
      s.written_gen = std::max(s.written_gen, gen);
      pending_deltas_ -= count;
      if (backoff_ms_ != 0 && log_ != nullptr) {
        log_->Info("checkpoint", "state writes succeed again");
      }
      backoff_ms_ = 0;
      retry_at_ = {};
      done_cv_.notify_all();
    } else {
      failures_.fetch_add(1, std::memory_order_relaxed);
      // Keep it: the failed delta is older than whatever was submitted meanwhile.
      MergedDelta again;
      for (rules::StateDelta& d : delta) again.Merge(std::move(d));
      for (rules::StateDelta& d : s.pending.Take()) again.Merge(std::move(d));
      s.pending = std::move(again);
      s.pending_count += count;
      s.pending_gen = std::max(s.pending_gen, gen);
      backoff_ms_ = backoff_ms_ == 0 ? opts_.retry_min_ms
                                     : std::min(backoff_ms_ * 2, opts_.retry_max_ms);
      retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms_);
      if (log_ != nullptr) {
        failure_log_.Logf(LogLevel::kError, "checkpoint",
                          "shard %d: state write failed (%s); retrying in %lld ms", shard,
                          error.c_str(), static_cast<long long>(backoff_ms_));
      }
    }
  }
}

void Checkpointer::Collect(MetricsWriter& w) const {
  w.Histogram("vigie_checkpoint_duration_seconds", "Time to write one checkpoint batch.", {},
              duration_.Snapshot());
  w.Gauge("vigie_checkpoint_last_success_timestamp_seconds",
          "Unix time of the last successful checkpoint write (0: none yet).", {},
          last_success_unix_s_.load(std::memory_order_relaxed));
  w.Counter("vigie_checkpoint_bytes_total", "Bytes of keys and values written by checkpoints.",
            {}, static_cast<double>(bytes_.load(std::memory_order_relaxed)));
  w.Counter("vigie_checkpoint_writes_total", "Checkpoint batches written.", {},
            static_cast<double>(writes_.load(std::memory_order_relaxed)));
  w.Counter("vigie_checkpoint_failures_total", "Checkpoint batch writes that failed (retried).",
            {}, static_cast<double>(failures_.load(std::memory_order_relaxed)));
  w.Gauge("vigie_checkpoint_pending_deltas", "Shard deltas submitted but not yet written.", {},
          static_cast<double>(pending_deltas()));
}

}  // namespace vigie::daemon
