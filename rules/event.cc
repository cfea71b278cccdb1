#include "rules/event.h"

#include <cstring>

namespace vigie::rules {

Value Event::Get(std::string_view name) const {
  // Called several times per rule and event (group key, where, aggregates, when): compare the
  // length and the first byte before calling memcmp, which most fields fail.
  const size_t n = name.size();
  const char c0 = n ? name[0] : '\0';
  for (const Field& f : fields) {
    const std::string& fn = f.name;
    if (fn.size() != n) continue;
    if (n == 0 || (fn[0] == c0 && std::memcmp(fn.data(), name.data(), n) == 0)) return f.value.view();
  }
  if (name == "kind") return Value::String(kind);
  if (name == "ts") return Value::Number(static_cast<double>(ts_ms));
  return Value::Missing();
}

void Event::Set(std::string_view name, const Value& v) {
  for (Field& f : fields) {
    if (f.name == name) {
      f.value.Assign(v);
      return;
    }
  }
  fields.emplace_back();
  fields.back().name.assign(name.data(), name.size());
  fields.back().value.Assign(v);
}

}  // namespace vigie::rules
