#pragma once
// Small JSON text helpers shared by the encoders of plugins/codec. Pure functions, thread-safe.
#include <cstdint>
#include <string>
#include <string_view>

namespace vigie::codec {

// Appends s as a JSON string literal, quotes included: '"' and '\\' escaped, control characters
// as \n \t \r \b \f or \u00XX, everything else raw. Bytes that are not valid UTF-8 (stray
// continuation bytes, overlong forms, surrogates, truncated sequences) become U+FFFD, so the
// result is always valid JSON.
void AppendJsonString(std::string* out, std::string_view s);

// Appends a number in its shortest exact form (rules::AppendNumber); NaN and infinities -> null.
void AppendJsonNumber(std::string* out, double v);

// Appends an unsigned / signed integer in decimal.
void AppendUint(std::string* out, uint64_t v);
void AppendInt(std::string* out, int64_t v);

// Event times accepted on the wire: 0 .. 9999-12-31T23:59:59.999Z in ms since the epoch.
constexpr int64_t kMaxEventTsMs = 253402300799999;
inline bool ValidEventTs(int64_t ms) { return ms >= 0 && ms <= kMaxEventTsMs; }

}  // namespace vigie::codec

namespace vigie::codec {
// Writes the same text as rules::AppendRfc3339Ms into buf (at least 48 bytes) without
// allocating; returns its length.
size_t FormatRfc3339Ms(int64_t utc_ms, char* buf);
}  // namespace vigie::codec
