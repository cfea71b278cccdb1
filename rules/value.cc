#include "rules/value.h"

#include <charconv>
#include <cmath>

namespace vigie::rules {

bool SameValue(const Value& a, const Value& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Type::kMissing: return false;
    case Type::kNumber: return a.num == b.num;
    case Type::kString: return a.str == b.str;
    case Type::kBool: return a.b == b.b;
  }
  return false;
}

void AppendNumber(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "Infinity" : "-Infinity");
    return;
  }
  if (v == 0) {  // also -0
    out->push_back('0');
    return;
  }
  char buf[32];
  // Integers up to 2^53 print without exponent; everything else in shortest round-trip form.
  // Integral values beyond 2^53 are forced into exponent form: the shortest form of 7.8e20 is
  // the 21-digit "777777777777777836032", an integer literal that many JSON parsers (simdjson
  // among them) refuse once it is beyond 64 bits.
  const double mag = std::fabs(v);
  if (mag < 9007199254740992.0 && v == std::trunc(v)) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
    out->append(buf, r.ptr);
    return;
  }
  auto r = mag >= 9007199254740992.0
               ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific)
               : std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendText(std::string* out, const Value& v) {
  switch (v.type) {
    case Type::kMissing: return;
    case Type::kNumber: AppendNumber(out, v.num); return;
    case Type::kString: out->append(v.str); return;
    case Type::kBool: out->append(v.b ? "true" : "false"); return;
  }
}

}  // namespace vigie::rules
