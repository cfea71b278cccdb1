#pragma once
// A counting global operator new/delete for allocation tests. Include it from exactly ONE source
// file of a test executable of its own (it replaces the global operators for the whole binary):
// tests/plugins/alloc (decode + route) and tests/rules/alloc (the engine).
//
// AllocCounter counts operator new/delete calls between its construction and Stop(). Catch2's
// macros allocate: collect results in plain variables while counting, assert after Stop().
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include <execinfo.h>
#include <unistd.h>

// --- Counting global operator new / delete -------------------------------------------------

namespace {

std::atomic<bool> g_counting{false};
thread_local bool t_excluded = false;  // AllocCounter::ExcludeThisThread
std::atomic<uint64_t> g_news{0};
std::atomic<uint64_t> g_deletes{0};

// VIGIE_ALLOC_BACKTRACE=N in the environment prints the stacks of the first N counted
// allocations on stderr: where a test's unexpected allocation comes from.
void MaybeBacktrace() {
  static thread_local bool inside = false;
  static std::atomic<int> left{-1};
  if (inside) return;
  inside = true;
  if (left.load() == -1) {
    const char* env = std::getenv("VIGIE_ALLOC_BACKTRACE");
    left.store(env ? std::atoi(env) : 0);
  }
  if (left.load() > 0) {
    left.fetch_sub(1);
    void* frames[16];
    int n = backtrace(frames, 16);
    backtrace_symbols_fd(frames, n, 2);
    static const char sep[] = "----\n";
    (void)!write(2, sep, sizeof sep - 1);
  }
  inside = false;
}

void* CountedAlloc(std::size_t n, std::size_t align, bool nothrow) {
  if (g_counting.load(std::memory_order_relaxed) && !t_excluded) {
    g_news.fetch_add(1, std::memory_order_relaxed);
    MaybeBacktrace();
  }
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  if (p == nullptr && !nothrow) throw std::bad_alloc();
  return p;
}

void CountedFree(void* p) {
  if (p == nullptr) return;
  if (g_counting.load(std::memory_order_relaxed) && !t_excluded) {
    g_deletes.fetch_add(1, std::memory_order_relaxed);
  }
  std::free(p);
}

// Counts operator new/delete calls between construction and Stop() (or destruction).
class AllocCounter {
 public:
  AllocCounter() {
    g_news.store(0);
    g_deletes.store(0);
    g_counting.store(true);
  }
  ~AllocCounter() { Stop(); }
  void Stop() {
    if (!g_counting.exchange(false)) return;
    news_ = g_news.load();
    deletes_ = g_deletes.load();
  }
  uint64_t news() const { return news_; }
  uint64_t deletes() const { return deletes_; }
  // From now on the calling thread's allocations are not counted (a test that drives threads
  // under test from a thread whose own allocations another test covers).
  static void ExcludeThisThread() { t_excluded = true; }

 private:
  uint64_t news_ = 0, deletes_ = 0;
};

}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n, 0, false); }
void* operator new[](std::size_t n) { return CountedAlloc(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n, 0, true); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return CountedAlloc(n, 0, true);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return CountedAlloc(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return CountedAlloc(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p) noexcept { CountedFree(p); }
void operator delete[](void* p) noexcept { CountedFree(p); }
void operator delete(void* p, std::size_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::size_t) noexcept { CountedFree(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { CountedFree(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { CountedFree(p); }
void operator delete(void* p, std::align_val_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::align_val_t) noexcept { CountedFree(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { CountedFree(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { CountedFree(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  CountedFree(p);
}
