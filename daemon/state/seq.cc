#include "daemon/state/seq.h"

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
  reserved_ = start;  // nothing of the new run reserved yet: the first Next() reserves
  // From now on a crash must be detected.
  if (!store->Put(kClean, "0", /*sync=*/true, error)) return false;
  return true;
}

uint64_t SeqAllocator::Next() {
  if (next_ >= reserved_) {
    uint64_t new_reserved = next_ + block_;
    std::string error;
    if (!store_->Put(kReserved, std::to_string(new_reserved), /*sync=*/true, &error)) {
      last_error_ = "cannot reserve output seq: " + error;
      return 0;
    }
    reserved_ = new_reserved;
  }
  return next_++;
}

bool SeqAllocator::Close(std::string* error) {
  if (store_ == nullptr) return true;
  if (!store_->Put(kNext, std::to_string(next_), /*sync=*/true, error)) return false;
  if (!store_->Put(kClean, "1", /*sync=*/true, error)) return false;
  store_ = nullptr;
  return true;
}

}  // namespace vigie::daemon
