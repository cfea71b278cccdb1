#include "rules/event.h"

namespace vigie::rules {

Value Event::Get(std::string_view name) const {
  for (const Field& f : fields) {
    if (f.name == name) return f.value.view();
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
