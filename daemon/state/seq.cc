#include "daemon/state/seq.h"

#include <pthread.h>

#include <charconv>

namespace vigie::daemon {
namespace {

constexpr char kReserved[] = "m/seq_reserved";
constexpr char kNext[] = "m/seq_next";
constexpr char kClean[] = "m/seq_clean";

// Reads a decimal u64 key; *present=false if absent. False on a store error or a bad value.
bool ReadU64(StateStore* store, const char* key, uint64_t* v, bool* present, std::string* error) {
  std::string text;
  if (!store->Get(key, &text, present, error)) return false;
  if (!*present) return true;
  auto r = std::from_chars(text.data(), text.data() + text.size(), *v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) {
    *error = std::string("corrupt ") + key + " value '" + text + "'";
    return false;
  }
  return true;
}

}  // namespace

bool SeqAllocator::Open(StateStore* store, std::string* error) {
  StopReserver();  // a second Open: the first one's reserver goes
  store_ = store;
  uint64_t reserved = 0, next = 0;
  bool has_reserved = false, has_next = false, has_clean = false;
  std::string clean;
  if (!ReadU64(store, kReserved, &reserved, &has_reserved, error)) return false;
  if (!ReadU64(store, kNext, &next, &has_next, error)) return false;
  if (!store->Get(kClean, &clean, &has_clean, error)) return false;

  uint64_t start = 1;
  if (has_clean && clean == "1" && has_next) {
    start = next;
  } else if (has_reserved) {
    start = reserved;  // a crash: skip what may have been handed out
  } else if (has_next) {
    start = next;
  }
  if (start == 0) start = 1;
  next_ = start;
  asked_ = 0;
  reserved_.store(start, std::memory_order_release);  // nothing of the new run reserved yet
  // From now on a crash must be detected.
  if (!store->Put(kClean, "0", /*sync=*/true, error)) return false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = false;
    requested_ = 0;
    failed_ = false;
  }
  thread_ = std::thread([this] { ReserverLoop(); });
  return true;
}

SeqAllocator::~SeqAllocator() { StopReserver(); }

void SeqAllocator::StopReserver() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();  // after the write in progress, if any
}

void SeqAllocator::ReserverLoop() {
  pthread_setname_np(pthread_self(), "vg-seq");  // for top -H, perf and gdb
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stop_ || requested_ != 0; });
    if (stop_) return;
    const uint64_t target = requested_;
    requested_ = 0;
    lk.unlock();
    std::string error;
    const bool ok = store_->Put(kReserved, std::to_string(target), /*sync=*/true, &error);
    lk.lock();
    if (ok) {
      if (target > reserved_.load(std::memory_order_relaxed))
        reserved_.store(target, std::memory_order_release);
    } else {
      failed_ = true;
      error_ = std::move(error);
    }
    cv_.notify_all();
  }
}

uint64_t SeqAllocator::Next() {
  const uint64_t r = reserved_.load(std::memory_order_acquire);  // >= next_
  // Half the numbers left (or none): ask for the next reservation, unless it is asked already.
  if (r - next_ <= block_ / 2 && asked_ <= r) {
    asked_ = next_ + block_;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (asked_ > requested_) requested_ = asked_;
      failed_ = false;
    }
    cv_.notify_all();
  }
  if (next_ >= r) {
    // None left: wait for the write asked for (once per block at most, and only when the
    // store is slower than the outputs).
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return reserved_.load(std::memory_order_acquire) > next_ || failed_; });
    if (reserved_.load(std::memory_order_acquire) <= next_) {
      last_error_ = "cannot reserve output seq: " + error_;
      failed_ = false;
      asked_ = 0;  // the next call asks again
      return 0;
    }
  }
  return next_++;
}

bool SeqAllocator::Close(std::string* error) {
  if (store_ == nullptr) return true;
  StopReserver();
  if (!store_->Put(kNext, std::to_string(next_), /*sync=*/true, error)) return false;
  if (!store_->Put(kClean, "1", /*sync=*/true, error)) return false;
  store_ = nullptr;
  return true;
}

}  // namespace vigie::daemon
