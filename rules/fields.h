#pragma once
// Event fields by number. A RuleSet numbers the event field names its rules read when it loads
// (FieldNames); the engine keeps, per event, where each numbered field is (EventFields), so that
// of the reads of one field — group keys, the index's leading tests, `where`, aggregate
// arguments, for every rule the event reaches — only the first scans the event's fields
// comparing names (Event::Get, which the profile put at 10 % of the engine with 10 000 rules).
//
// Same answers as Event::Get: the first field of a name wins; "kind" and "ts" read the event's
// kind and time unless the event has a field of that name. A name the rules never read has no
// number; readers that were not given one (kNoField) or have no EventFields fall back to
// Event::Get by name, so tools and tests that build expressions alone need nothing new.
// No I/O, no threads: a FieldNames is immutable once its RuleSet is built (read by every shard);
// an EventFields belongs to one thread.
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rules/event.h"
#include "rules/value.h"

namespace vigie::rules {

inline constexpr uint32_t kNoField = UINT32_MAX;

class FieldNames {
 public:
  // The number of `name`, given on first use (0, 1, 2...). Load time only.
  uint32_t Intern(std::string_view name);
  // The number of `name`, or kNoField if no rule reads it.
  uint32_t Find(std::string_view name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? kNoField : it->second;
  }
  size_t size() const { return names_.size(); }
  std::string_view name(uint32_t id) const { return names_[id]; }
  uint32_t kind_id() const { return kind_id_; }  // kNoField if no rule reads "kind"
  uint32_t ts_id() const { return ts_id_; }

 private:
  struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, SvHash, std::equal_to<>> ids_;
  uint32_t kind_id_ = kNoField;
  uint32_t ts_id_ = kNoField;
};

// One event's fields by number, for the FieldNames it is bound to: a cache of where each
// numbered field is in the event, filled on first read. Load() per event is O(1); the first read
// of a number scans the event's fields as Event::Get does, and every later read of it for the
// same event is two loads. So an event costs one scan per distinct field its rules read, not one
// per read (with 10 000 rules the same few fields are read dozens of times), and nothing for the
// fields no rule reads. Keeps a pointer to the event given to Load(), which must outlive the
// reads. One thread: Get() fills the cache (const for the readers, which only read).
class EventFields {
 public:
  // Numbers from `names` (null: none; every read goes by name). Sizes the cache: call when the
  // rules change, not per event.
  void Bind(const FieldNames* names);

  void Load(const Event& ev) {
    ev_ = &ev;
    if (++gen_ == 0) {  // wrapped: entries from 2^32 events ago would look current
      for (Slot& s : slots_) s.gen = 0;
      gen_ = 1;
    }
  }
  const Event& event() const { return *ev_; }
  // True if `ev` is the event loaded last and not released since.
  bool Holds(const Event* ev) const { return ev != nullptr && ev == ev_; }
  // Forgets the event (its storage may be reused for another one after this).
  void Release() { ev_ = nullptr; }

  // The field numbered `id` (from the bound FieldNames) and named `name`; for kNoField or when
  // unbound, the field named `name` (Event::Get).
  Value Get(uint32_t id, std::string_view name) const {
    if (id == kNoField || names_ == nullptr) return ev_->Get(name);
    Slot& s = slots_[id];
    if (s.gen != gen_) s = {gen_, Find(name)};
    if (s.idx != kAbsent) return ev_->fields[s.idx].value.view();
    if (id == names_->kind_id()) return Value::String(ev_->kind);
    if (id == names_->ts_id()) return Value::Number(static_cast<double>(ev_->ts_ms));
    return Value::Missing();
  }

 private:
  static constexpr uint32_t kAbsent = UINT32_MAX;
  struct Slot {
    uint32_t gen = 0;
    uint32_t idx = kAbsent;  // the field's index in the event, or kAbsent
  };
  // The index of the first field named `name`, as Event::Get finds it.
  uint32_t Find(std::string_view name) const {
    const size_t n = name.size();
    const char c0 = n ? name[0] : '\0';
    const uint32_t count = static_cast<uint32_t>(ev_->fields.size());
    for (uint32_t i = 0; i < count; ++i) {
      const std::string& fn = ev_->fields[i].name;
      if (fn.size() != n) continue;
      if (n == 0 || (fn[0] == c0 && std::memcmp(fn.data(), name.data(), n) == 0)) return i;
    }
    return kAbsent;
  }

  const FieldNames* names_ = nullptr;
  const Event* ev_ = nullptr;
  mutable std::vector<Slot> slots_;
  uint32_t gen_ = 0;
};

}  // namespace vigie::rules
