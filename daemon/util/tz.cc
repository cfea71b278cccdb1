#include "daemon/util/tz.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sys/stat.h>

namespace vigie::daemon {
namespace {

constexpr const char* kZoneDir = "/usr/share/zoneinfo/";

class SystemZone final : public rules::TimeZone {
 public:
  rules::LocalTime ToLocal(int64_t utc_ms) const override {
    int64_t secs = utc_ms / 1000;
    if (utc_ms % 1000 < 0) secs -= 1;
    time_t t = static_cast<time_t>(secs);
    struct tm tm;
    rules::LocalTime lt;
    if (localtime_r(&t, &tm) == nullptr) return lt;
    lt.hour = tm.tm_hour;
    lt.minute = tm.tm_min;
    lt.weekday = tm.tm_wday == 0 ? 7 : tm.tm_wday;
    return lt;
  }
};

bool IsTzifFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4];
  size_t n = fread(magic, 1, 4, f);
  fclose(f);
  return n == 4 && magic[0] == 'T' && magic[1] == 'Z' && magic[2] == 'i' && magic[3] == 'f';
}

}  // namespace

std::unique_ptr<rules::TimeZone> LoadTimeZone(const std::string& name, std::string* error) {
  bool bad_name = name.empty() || name[0] == '/' || name.find("..") != std::string::npos;
  if (bad_name || !IsTzifFile(kZoneDir + name)) {
    if (error) *error = "unknown time zone '" + name + "'";
    return nullptr;
  }
  std::string tz = ":" + name;
  setenv("TZ", tz.c_str(), 1);
  tzset();
  return std::make_unique<SystemZone>();
}

}  // namespace vigie::daemon
