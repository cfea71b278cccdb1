// TimerQueue (rules/timer_queue.h): its pops come out in the order of a binary min-heap of the
// same entries, however pushes and pops interleave and wherever the instants fall (the near heap,
// the wheel, beyond its span, before its start).
#include "rules/timer_queue.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <queue>
#include <random>
#include <vector>

namespace vigie::rules {
namespace {

struct Entry {
  int64_t due;
  uint32_t rule;
  uint64_t seq;
  bool operator>(const Entry& o) const {
    if (due != o.due) return due > o.due;
    if (rule != o.rule) return rule > o.rule;
    return seq > o.seq;
  }
  bool operator==(const Entry& o) const { return due == o.due && rule == o.rule && seq == o.seq; }
};

using Reference = std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>>;

// Pops everything due at or before `target` from both, checking they agree entry by entry.
void DrainBoth(TimerQueue<Entry>& q, Reference& ref, int64_t target, size_t* popped) {
  while (!ref.empty() && ref.top().due <= target) {
    REQUIRE_FALSE(q.empty());
    const Entry want = ref.top();
    const Entry got = q.Top();
    REQUIRE(got == want);
    q.Pop();
    ref.pop();
    ++*popped;
  }
  REQUIRE(q.size() == ref.size());
  if (!q.empty()) REQUIRE(q.Top() == ref.top());
}

TEST_CASE("timer queue: pops in the heap's order, ties broken by the entries' order", "[timer]") {
  TimerQueue<Entry> q(/*shift=*/2, /*slots=*/64);  // buckets of 4 ms, a span of 256 ms
  CHECK(q.empty());
  // Same instant, pushed out of order: rule, then arming order decide.
  q.Push({100, 2, 1});
  q.Push({100, 1, 2});
  q.Push({100, 1, 3});
  q.Push({101, 0, 4});   // same bucket, later
  q.Push({99, 5, 5});    // earlier than the first: before the wheel's start
  q.Push({5000, 0, 6});  // beyond the span
  q.Push({-40, 0, 7});   // negative instants floor to their bucket
  REQUIRE(q.size() == 7);
  std::vector<uint64_t> order;
  while (!q.empty()) {
    order.push_back(q.Top().seq);
    q.Pop();
  }
  CHECK(order == std::vector<uint64_t>{7, 5, 2, 3, 1, 4, 6});
}

TEST_CASE("timer queue: agrees with a binary heap on random workloads", "[timer]") {
  struct Shape {
    int shift;
    size_t slots;
    int64_t spread;  // how far ahead of `now` timers are armed
  };
  // Small wheels turn many times and send timers beyond their span; the default one does not.
  const Shape shapes[] = {{0, 64, 50}, {2, 64, 1000}, {6, 64, 100000}, {3, 256, 5000},
                          {TimerQueue<Entry>::kDefaultShift, TimerQueue<Entry>::kDefaultSlots,
                           10'000'000}};
  for (const Shape& shape : shapes) {
    for (uint32_t seed = 1; seed <= 20; ++seed) {
      CAPTURE(shape.shift, shape.slots, shape.spread, seed);
      std::mt19937_64 rng(seed);
      TimerQueue<Entry> q(shape.shift, shape.slots);
      Reference ref;
      int64_t now = static_cast<int64_t>(rng() % 1'000'000) - 500'000;
      uint64_t seq = 0;
      size_t popped = 0;
      for (int step = 0; step < 3000; ++step) {
        const unsigned what = static_cast<unsigned>(rng() % 10);
        if (what < 6) {
          // Arm: mostly ahead of now, sometimes at now or before it (a timer already due),
          // sometimes on an instant others share.
          int64_t due = now + static_cast<int64_t>(rng() % static_cast<uint64_t>(shape.spread));
          if (what == 0) due = now - static_cast<int64_t>(rng() % 20);
          if (what == 1) due = now + 10 * static_cast<int64_t>(rng() % 4);
          const Entry e{due, static_cast<uint32_t>(rng() % 4), ++seq};
          q.Push(e);
          ref.push(e);
        } else if (what < 9) {
          now += static_cast<int64_t>(rng() % static_cast<uint64_t>(shape.spread / 10 + 2));
          DrainBoth(q, ref, now, &popped);
        } else {
          // Pop whatever is first, due or not (the engine's NextTimer then AdvanceTo to it).
          if (!ref.empty()) {
            REQUIRE(q.Top() == ref.top());
            if (ref.top().due > now) now = ref.top().due;
            q.Pop();
            ref.pop();
            ++popped;
          }
        }
      }
      DrainBoth(q, ref, std::numeric_limits<int64_t>::max() - 1, &popped);
      CHECK(q.empty());
      CHECK(popped == seq);
    }
  }
}

TEST_CASE("timer queue: ForEach sees every entry once, Clear empties it, and it is usable after", "[timer]") {
  TimerQueue<Entry> q(1, 64);
  std::vector<uint64_t> seen;
  for (uint64_t i = 1; i <= 200; ++i) q.Push({static_cast<int64_t>(i * 7 % 900), 0, i});
  q.Top();  // the wheel turns: entries now sit in the near heap, the wheel and beyond its span
  uint64_t sum = 0;
  size_t n = 0;
  q.ForEach([&](const Entry& e) {
    sum += e.seq;
    ++n;
  });
  CHECK(n == 200);
  CHECK(sum == 200 * 201 / 2);
  q.Clear();
  CHECK(q.empty());
  n = 0;
  q.ForEach([&](const Entry&) { ++n; });
  CHECK(n == 0);
  q.Push({5, 0, 1000});
  q.Push({3, 0, 1001});
  CHECK(q.Top().seq == 1001);
  q.Pop();
  CHECK(q.Top().seq == 1000);
  q.Pop();
  CHECK(q.empty());
}

TEST_CASE("timer queue: instants at the ends of int64 neither overflow nor reorder", "[timer]") {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  TimerQueue<Entry> q;
  q.Push({kMax - 1, 0, 1});
  q.Push({0, 0, 2});
  q.Push({kMin, 0, 3});
  q.Push({kMax - 100, 0, 4});
  std::vector<uint64_t> order;
  while (!q.empty()) {
    order.push_back(q.Top().seq);
    q.Pop();
  }
  CHECK(order == std::vector<uint64_t>{3, 2, 4, 1});
}

}  // namespace
}  // namespace vigie::rules
