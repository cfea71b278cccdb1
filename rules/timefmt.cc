#include "rules/timefmt.h"

#include <algorithm>
#include <cstdio>

namespace vigie::rules {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

namespace {

char* Put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
  return p + 2;
}

}  // namespace

size_t FormatRfc3339Ms(int64_t utc_ms, char* buf) {
  int64_t days = utc_ms / 86400000;
  int64_t rem = utc_ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    days -= 1;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  const auto hh = static_cast<unsigned>(rem / 3600000);
  const auto mi = static_cast<unsigned>(rem / 60000 % 60);
  const auto ss = static_cast<unsigned>(rem / 1000 % 60);
  const auto ms = static_cast<unsigned>(rem % 1000);
  if (y < 0 || y > 9999) {  // outside RFC 3339's four-digit years: the old, general form
    int n = std::snprintf(buf, kRfc3339MsMax, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                          static_cast<long long>(y), m, d, hh, mi, ss, ms);
    return n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), kRfc3339MsMax - 1);
  }
  char* p = buf;
  const auto yy = static_cast<unsigned>(y);
  p = Put2(p, yy / 100);
  p = Put2(p, yy % 100);
  *p++ = '-';
  p = Put2(p, m);
  *p++ = '-';
  p = Put2(p, d);
  *p++ = 'T';
  p = Put2(p, hh);
  *p++ = ':';
  p = Put2(p, mi);
  *p++ = ':';
  p = Put2(p, ss);
  *p++ = '.';
  *p++ = static_cast<char>('0' + ms / 100);
  p = Put2(p, ms % 100);
  *p++ = 'Z';
  return static_cast<size_t>(p - buf);
}

void AppendRfc3339Ms(std::string* out, int64_t utc_ms) {
  char buf[kRfc3339MsMax];
  out->append(buf, FormatRfc3339Ms(utc_ms, buf));
}

std::string FormatRfc3339Ms(int64_t utc_ms) {
  std::string s;
  AppendRfc3339Ms(&s, utc_ms);
  return s;
}

namespace {
bool Digits(std::string_view s, size_t pos, size_t n, int* v) {
  if (pos + n > s.size()) return false;
  int x = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *v = x;
  return true;
}
}  // namespace

bool ParseRfc3339(std::string_view s, int64_t* utc_ms) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d))
    return false;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
  if (!Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return false;
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap)) return false;
  size_t pos = 19;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  int offset_min = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59)
      return false;
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  if (sec == 60) sec = 59;  // leap second: clamp (no leap-second table)
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t t = ((days * 24 + h) * 60 + mi) * 60 + sec - static_cast<int64_t>(offset_min) * 60;
  *utc_ms = t * 1000 + ms;
  return true;
}

}  // namespace vigie::rules
