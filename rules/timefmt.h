#pragma once
// UTC instants <-> RFC 3339 text. Pure functions, thread-safe.
#include <cstdint>
#include <string>
#include <string_view>

namespace vigie::rules {

// "2026-11-26T22:10:00.000Z" (always UTC, always milliseconds).
void AppendRfc3339Ms(std::string* out, int64_t utc_ms);
std::string FormatRfc3339Ms(int64_t utc_ms);
// The same into buf (at least kRfc3339MsMax bytes, not NUL-terminated); returns the length.
// Every output carries one: digits are written by hand (snprintf was 11 % of the dispatcher).
constexpr size_t kRfc3339MsMax = 48;
size_t FormatRfc3339Ms(int64_t utc_ms, char* buf);

// Parses "2026-11-26T22:00:00Z", with optional fractional seconds (any number of digits,
// truncated to ms) and a "Z" or "+hh:mm"/"-hh:mm" offset; 't'/'z' and a space separator are
// accepted. Returns false on anything else (including out-of-range fields).
bool ParseRfc3339(std::string_view text, int64_t* utc_ms);

// Days since 1970-01-01 for a proleptic Gregorian date, and back (Howard Hinnant's algorithms).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d);

}  // namespace vigie::rules
