#include "daemon/util/malloc_tuning.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vigie::daemon {

namespace {
constexpr const char kGuard[] = "VIGIE_MALLOC_TUNED";

bool SanitizedBuild() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}
}  // namespace

std::optional<std::string> MallocTunablesFor(const char* tunables, const char* opt_in,
                                             std::string_view thp_mode) {
  // Opt-in: it cost the city rules' tail latency (bench/PROFILE.md, "Huge pages for the heap").
  if (opt_in == nullptr || (std::strcmp(opt_in, "on") != 0 && std::strcmp(opt_in, "1") != 0))
    return std::nullopt;
  const std::string_view current = tunables ? tunables : "";
  if (current.find("glibc.malloc.hugetlb") != std::string_view::npos) return std::nullopt;
  if (thp_mode.find("[never]") != std::string_view::npos) return std::nullopt;
  std::string out(current);
  auto add = [&](std::string_view t) {
    if (!out.empty()) out.push_back(':');
    out.append(t);
  };
  add("glibc.malloc.hugetlb=1");
  // An operator's own arena_max stays (fewer huge pages then, but their choice).
  if (current.find("glibc.malloc.arena_max") == std::string_view::npos)
    add("glibc.malloc.arena_max=1");
  return out;
}

void MaybeReexecWithMallocTuning(char** argv) {
#ifndef __GLIBC__
  (void)argv;
  return;
#else
  if (SanitizedBuild() || std::getenv(kGuard) != nullptr) return;
  std::string thp;
  {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::ostringstream s;
    s << f.rdbuf();
    thp = s.str();
  }
  const std::optional<std::string> t =
      MallocTunablesFor(std::getenv("GLIBC_TUNABLES"), std::getenv("VIGIE_MALLOC_TUNING"), thp);
  if (!t) return;
  // The binary's own path, not /proc/self/exe: the kernel names the process after the file it
  // executes ("exe" would show in ps, top and pgrep). A binary replaced on disk since it started
  // reads "... (deleted)": run as it is then.
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return;
  self[n] = 0;
  if (std::string_view(self, static_cast<size_t>(n)).ends_with(" (deleted)")) return;
  // Before any thread exists, so setenv is safe; on failure the environment is put back.
  const char* old = std::getenv("GLIBC_TUNABLES");
  const std::string saved = old ? old : "";
  setenv("GLIBC_TUNABLES", t->c_str(), 1);
  setenv(kGuard, "1", 1);
  execv(self, argv);
  if (old) setenv("GLIBC_TUNABLES", saved.c_str(), 1);
  else unsetenv("GLIBC_TUNABLES");
  unsetenv(kGuard);
#endif
}

std::string MallocTuningInEffect() {
  if (std::getenv(kGuard) == nullptr) return {};
  // The guard alone could come from elsewhere (a parent vigie's environment): say so only when
  // the tunables are there too.
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (t == nullptr || std::strstr(t, "glibc.malloc.hugetlb=1") == nullptr) return {};
  return t;
}

}  // namespace vigie::daemon
