#pragma once
// Catch2 glue for the integration tests (the harness itself does not depend on Catch).
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

// Starts the daemon or fails the test with the reason and its stderr.
#define IT_START(d)                          \
  do {                                       \
    std::string it_start_error_;             \
    bool it_started_ = (d).Start(&it_start_error_); \
    INFO(it_start_error_);                   \
    REQUIRE(it_started_);                    \
  } while (0)

// Stops with SIGTERM and requires exit code 0 (stderr shown otherwise).
#define IT_STOP_CLEAN(d)                     \
  do {                                       \
    int it_code_ = (d).Stop();               \
    INFO("stderr:\n" << (d).Stderr());       \
    REQUIRE(it_code_ == 0);                  \
  } while (0)

// Barrier (see harness.h) or fail.
#define IT_BARRIER(in, out)                  \
  do {                                       \
    bool it_barrier_ = vigie::it::Barrier((in), (out)); \
    REQUIRE(it_barrier_);                    \
  } while (0)

namespace vigie::it {

// The canonical texts (without ts) of the outputs of v, probes left out, in order received.
inline std::vector<std::string> CanonAll(const std::vector<Received>& v, bool with_ts = false) {
  std::vector<std::string> out;
  for (const auto& r : WithoutProbes(v)) out.push_back(Canon(r.out, with_ts));
  return out;
}

// The same, sorted: for comparing outputs that came on different sinks (the order between two
// sockets is not defined).
inline std::vector<std::string> CanonSorted(const std::vector<Received>& v, bool with_ts = false) {
  auto out = CanonAll(v, with_ts);
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::string> SortedStrings(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace vigie::it
