// ParseDuration (RULES.md, "Durations"): a sequence of <whole number><unit> with units among
// d, h, m, s, ms, each at most once and in decreasing order ("1h30m", "1m30s500ms"). No sign, no
// fraction, no spaces, no bare number. Errors say what was wrong and show the accepted form.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "rules/expr.h"

namespace vigie::rules {
namespace {

struct Unit {
  std::string_view name;
  int64_t ms;
};
// In the order they must appear. "ms" is listed before "m" only for matching; its rank is last.
constexpr Unit kUnits[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

bool Fail(std::string* error, std::string msg) {
  if (error) *error = std::move(msg);
  return false;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

bool ParseDuration(std::string_view text, int64_t* ms, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  const std::string hint = " (expected e.g. 500ms, 10s, 2m, 1h, 1d or 1h30m)";
  if (text.empty()) return Fail(error, "empty duration" + hint);
  if (text[0] == '-') return Fail(error, "negative duration " + quoted + hint);
  if (text[0] == '+') return Fail(error, "duration " + quoted + " must not have a sign" + hint);

  int64_t total = 0;
  int last_rank = -1;  // index in kUnits of the previous component
  size_t i = 0;
  while (i < text.size()) {
    if (!IsDigit(text[i])) {
      if (text[i] == ' ' || text[i] == '\t')
        return Fail(error, "duration " + quoted + " must not contain spaces" + hint);
      return Fail(error, "expected a number at '" + std::string(text.substr(i)) + "' in " +
                             quoted + hint);
    }
    int64_t n = 0;
    while (i < text.size() && IsDigit(text[i])) {
      int d = text[i] - '0';
      if (n > (std::numeric_limits<int64_t>::max() - d) / 10)
        return Fail(error, "duration " + quoted + " is too large");
      n = n * 10 + d;
      ++i;
    }
    if (i < text.size() && (text[i] == '.' || text[i] == ','))
      return Fail(error, "duration " + quoted +
                             " must use whole numbers; combine units instead (1h30m, 1m30s, 1s500ms)");
    size_t u = i;
    while (i < text.size() && IsAlpha(text[i])) ++i;
    std::string_view unit = text.substr(u, i - u);
    if (unit.empty()) {
      if (u == text.size() && total == 0 && last_rank < 0)
        return Fail(error, "duration " + quoted + " has no unit" + hint);
      return Fail(error, "missing unit after " + std::string(text.substr(0, u)) + " in " + quoted +
                             hint);
    }
    int rank = -1;
    for (int k = 0; k < static_cast<int>(std::size(kUnits)); ++k) {
      if (kUnits[k].name == unit) rank = k;
    }
    if (rank < 0)
      return Fail(error, "unknown unit '" + std::string(unit) + "' in " + quoted +
                             " (units: d, h, m, s, ms)");
    if (rank == last_rank)
      return Fail(error, "unit '" + std::string(unit) + "' appears twice in " + quoted);
    if (rank < last_rank)
      return Fail(error, "units out of order in " + quoted +
                             ": write larger units first (d, h, m, s, ms), e.g. 1h30m");
    last_rank = rank;
    const int64_t per = kUnits[rank].ms;
    if (n > std::numeric_limits<int64_t>::max() / per ||
        total > std::numeric_limits<int64_t>::max() - n * per)
      return Fail(error, "duration " + quoted + " is too large");
    total += n * per;
  }
  *ms = total;
  return true;
}

}  // namespace vigie::rules
