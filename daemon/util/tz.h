#pragma once
// The system time zone for the rules engine (rules/timezone.h), backed by the tz database in
// /usr/share/zoneinfo.
//
// A process has ONE configured zone: LoadTimeZone sets TZ=":<name>" with setenv + tzset, and the
// returned object answers ToLocal with localtime_r. Call it once at start-up, before any other
// thread exists (setenv is not thread-safe); loading a second, different zone changes the answer
// of every zone object loaded before. After that, ToLocal is safe to call from every shard thread
// at once (localtime_r after tzset; glibc takes a short internal lock).
#include <memory>
#include <string>

#include "rules/timezone.h"

namespace vigie::daemon {

// Checks that /usr/share/zoneinfo/<name> exists and is a TZif file, then makes it the process
// zone. On failure returns null and sets *error to "unknown time zone '<name>'". "UTC" works
// when tzdata is installed; names with ".." or a leading '/' are refused.
std::unique_ptr<rules::TimeZone> LoadTimeZone(const std::string& name, std::string* error);

}  // namespace vigie::daemon
