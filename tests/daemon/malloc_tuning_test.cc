// MallocTunablesFor: when `vigie run` re-executes itself for huge pages, and with what.
#include "daemon/util/malloc_tuning.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace vigie::daemon {

TEST_CASE("malloc tuning: on request, huge pages and one arena, added to the operator's tunables",
          "[malloc_tuning]") {
  const char* madvise = "always [madvise] never\n";
  CHECK(MallocTunablesFor(nullptr, "on", madvise) ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  CHECK(MallocTunablesFor("", "1", "[always] madvise never\n") ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // Unreadable THP mode: ask anyway (madvise is harmless where THP is off).
  CHECK(MallocTunablesFor(nullptr, "on", "") ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // Other tunables are kept, ours appended.
  CHECK(MallocTunablesFor("glibc.malloc.tcache_count=0", "on", madvise) ==
        "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // An operator's arena_max stays; only hugetlb is added.
  CHECK(MallocTunablesFor("glibc.malloc.arena_max=4", "on", madvise) ==
        "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1");
}

TEST_CASE("malloc tuning: nothing unless asked, chosen already, or THP is never",
          "[malloc_tuning]") {
  const char* madvise = "always [madvise] never\n";
  CHECK_FALSE(MallocTunablesFor(nullptr, nullptr, madvise));  // the default
  CHECK_FALSE(MallocTunablesFor(nullptr, "off", madvise));
  CHECK_FALSE(MallocTunablesFor(nullptr, "0", madvise));
  CHECK_FALSE(MallocTunablesFor(nullptr, "yes please", madvise));
  CHECK_FALSE(MallocTunablesFor("glibc.malloc.hugetlb=0", "on", madvise));
  CHECK_FALSE(MallocTunablesFor("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", "on", madvise));
  CHECK_FALSE(MallocTunablesFor(nullptr, "on", "always madvise [never]\n"));
}

}  // namespace vigie::daemon

namespace vigie::daemon {

TEST_CASE("malloc tuning: reported only when re-executed for it and the tunables are there",
          "[malloc_tuning]") {
  // The guard and GLIBC_TUNABLES as the re-executed daemon sees them; restored afterwards.
  const char* old_guard = std::getenv("VIGIE_MALLOC_TUNED");
  const char* old_tunables = std::getenv("GLIBC_TUNABLES");
  const std::string saved_guard = old_guard ? old_guard : "";
  const std::string saved_tunables = old_tunables ? old_tunables : "";
  unsetenv("VIGIE_MALLOC_TUNED");
  setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
  CHECK(MallocTuningInEffect().empty());  // not re-executed: the operator's own setting
  setenv("VIGIE_MALLOC_TUNED", "1", 1);
  CHECK(MallocTuningInEffect() == "glibc.malloc.hugetlb=1");
  setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
  CHECK(MallocTuningInEffect().empty());  // a stray guard, without the tunables
  unsetenv("GLIBC_TUNABLES");
  CHECK(MallocTuningInEffect().empty());
  if (old_guard) setenv("VIGIE_MALLOC_TUNED", saved_guard.c_str(), 1);
  else unsetenv("VIGIE_MALLOC_TUNED");
  if (old_tunables) setenv("GLIBC_TUNABLES", saved_tunables.c_str(), 1);
}

}  // namespace vigie::daemon
