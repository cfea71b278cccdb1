// MallocTunablesFor: when `vigie run` re-executes itself for huge pages, and with what.
#include "daemon/util/malloc_tuning.h"

#include <catch2/catch.hpp>

namespace vigie::daemon {

TEST_CASE("malloc tuning: huge pages and one arena, added to the operator's tunables",
          "[malloc_tuning]") {
  const char* madvise = "always [madvise] never\n";
  CHECK(MallocTunablesFor(nullptr, nullptr, madvise) ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  CHECK(MallocTunablesFor("", nullptr, "[always] madvise never\n") ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // Unreadable THP mode: ask anyway (madvise is harmless where THP is off).
  CHECK(MallocTunablesFor(nullptr, nullptr, "") ==
        "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // Other tunables are kept, ours appended.
  CHECK(MallocTunablesFor("glibc.malloc.tcache_count=0", nullptr, madvise) ==
        "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1");
  // An operator's arena_max stays; only hugetlb is added.
  CHECK(MallocTunablesFor("glibc.malloc.arena_max=4", nullptr, madvise) ==
        "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1");
  // Any other opt-out value keeps the tuning on.
  CHECK(MallocTunablesFor(nullptr, "on", madvise).has_value());
}

TEST_CASE("malloc tuning: nothing when turned off, chosen already, or THP is never",
          "[malloc_tuning]") {
  const char* madvise = "always [madvise] never\n";
  CHECK_FALSE(MallocTunablesFor(nullptr, "off", madvise));
  CHECK_FALSE(MallocTunablesFor(nullptr, "0", madvise));
  CHECK_FALSE(MallocTunablesFor("glibc.malloc.hugetlb=0", nullptr, madvise));
  CHECK_FALSE(MallocTunablesFor("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", nullptr, madvise));
  CHECK_FALSE(MallocTunablesFor(nullptr, nullptr, "always madvise [never]\n"));
}

}  // namespace vigie::daemon
