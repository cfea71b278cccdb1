#pragma once
// Heap on transparent huge pages, on request: with VIGIE_MALLOC_TUNING=on in its environment,
// `vigie run` re-executes itself once, at start-up, with glibc's malloc tunables set.
//
// Why: the groups of a city (500 000 of them with the 200-rule bench set, a few hundred bytes
// each, reached at random) miss the TLB: on 4 KiB pages the hottest instruction of the engine
// was a prefetch waiting for its page walk. glibc (2.35+) can ask for transparent huge pages for
// its heap (`glibc.malloc.hugetlb=1`: madvise(MADV_HUGEPAGE) on what it maps), but only for the
// main arena; the shards' thread arenas stay on small pages, so `glibc.malloc.arena_max=1` puts
// every thread on the main arena. Tunables are read when the process starts, hence the re-exec:
// same pid, same arguments.
//
// Why only on request: it saved about 5 % of the CPU per event with half a million groups, but
// made the tail latency of the example city rules worse (p99.9 about 5 -> 7-9 ms at 60 000
// events/s). Measured in bench/PROFILE.md ("Huge pages for the heap").
//
// Not done when: VIGIE_MALLOC_TUNING is not `on` (or 1); GLIBC_TUNABLES already names
// glibc.malloc.hugetlb (the operator chose); the kernel's THP mode is `never`; this process is
// already the re-executed one (VIGIE_MALLOC_TUNED is set); the build is not on glibc or runs
// under a sanitizer (its allocator ignores these tunables).
#include <optional>
#include <string>
#include <string_view>

namespace vigie::daemon {

// The GLIBC_TUNABLES value to re-execute with, or nullopt when nothing is to be done. Pure, for
// tests: `tunables` and `opt_in` are the environment's GLIBC_TUNABLES and VIGIE_MALLOC_TUNING
// (null when unset), `thp_mode` the content of /sys/kernel/mm/transparent_hugepage/enabled
// (empty when unreadable: then huge pages are asked for anyway, madvise is harmless).
std::optional<std::string> MallocTunablesFor(const char* tunables, const char* opt_in,
                                             std::string_view thp_mode);

// Re-executes this binary (its path from /proc/self/exe) with argv and the tunables above,
// once. Returns only when it does not re-execute (nothing to do, or exec failed: the daemon then
// runs as it is). Call first thing in main, before any thread or output.
void MaybeReexecWithMallocTuning(char** argv);

// For the start-up log: the tunables this process runs with when it was re-executed for them
// (the guard is set and GLIBC_TUNABLES names hugetlb), else an empty string.
std::string MallocTuningInEffect();

}  // namespace vigie::daemon
