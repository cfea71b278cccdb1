#include "rules/fields.h"

namespace vigie::rules {

uint32_t FieldNames::Intern(std::string_view name) {
  const uint32_t found = Find(name);
  if (found != kNoField) return found;
  const uint32_t id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  if (name == "kind") kind_id_ = id;
  if (name == "ts") ts_id_ = id;
  if (names_.size() * 2 > slots_.size()) {
    Rehash(slots_.empty() ? 16 : slots_.size() * 2);
  } else {
    Place(id);
  }
  return id;
}

void FieldNames::Place(uint32_t id) {
  const std::string& name = names_[id];
  const size_t mask = slots_.size() - 1;
  size_t i = Mix(Head(name), name.size()) & mask;
  while (slots_[i].id != kNoField) i = (i + 1) & mask;
  slots_[i] = {Head(name), static_cast<uint32_t>(name.size()), id};
}

void FieldNames::Rehash(size_t capacity) {
  slots_.assign(capacity, Slot{});
  for (uint32_t id = 0; id < names_.size(); ++id) Place(id);
}

void EventFields::Bind(const FieldNames* names) {
  names_ = names;
  slots_.assign(names ? names->size() : 0, Slot{});
  gen_ = 0;
}

}  // namespace vigie::rules
