#include "rules/fields.h"

namespace vigie::rules {

uint32_t FieldNames::Intern(std::string_view name) {
  const uint32_t found = Find(name);
  if (found != kNoField) return found;
  const uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(names_.back(), id);
  if (name == "kind") kind_id_ = id;
  if (name == "ts") ts_id_ = id;
  return id;
}

void EventFields::Bind(const FieldNames* names) {
  names_ = names;
  slots_.assign(names ? names->size() : 0, Slot{});
  gen_ = 0;
}

}  // namespace vigie::rules
