#pragma once
// Event fields by number. A RuleSet numbers the event field names its rules read when it loads
// (FieldNames); the engine then looks each event's field names up once (EventFields::Load) and
// every read after that — group keys, the index's leading tests, `where`, aggregate arguments —
// is an array access by the number fixed at load, instead of a scan of the event's fields
// comparing names (Event::Get), which the profile put at 10 % of the engine with 10 000 rules.
//
// Same answers as Event::Get: the first field of a name wins; "kind" and "ts" read the event's
// kind and time unless the event has a field of that name. A name the rules never read has no
// number; readers that were not given one (kNoField) or have no EventFields fall back to
// Event::Get by name, so tools and tests that build expressions alone need nothing new.
// No I/O, no threads: a FieldNames is immutable once its RuleSet is built (read by every shard);
// an EventFields belongs to one thread.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "rules/event.h"
#include "rules/value.h"

namespace vigie::rules {

inline constexpr uint32_t kNoField = UINT32_MAX;

class FieldNames {
 public:
  // The number of `name`, given on first use (0, 1, 2...). Load time only.
  uint32_t Intern(std::string_view name);
  // The number of `name`, or kNoField if no rule reads it. No allocation, and no call for
  // names of up to 8 bytes: a slot holds a name's first 8 bytes and its length.
  uint32_t Find(std::string_view name) const {
    if (slots_.empty()) return kNoField;
    const uint64_t head = Head(name);
    const size_t mask = slots_.size() - 1;
    for (size_t i = Mix(head, name.size()) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.id == kNoField) return kNoField;
      if (s.head == head && s.size == name.size() &&
          (name.size() <= 8 || std::string_view(names_[s.id]) == name))
        return s.id;
    }
  }
  size_t size() const { return names_.size(); }
  std::string_view name(uint32_t id) const { return names_[id]; }
  uint32_t kind_id() const { return kind_id_; }  // kNoField if no rule reads "kind"
  uint32_t ts_id() const { return ts_id_; }

 private:
  struct Slot {
    uint64_t head = 0;  // the name's first 8 bytes (Head)
    uint32_t size = 0;
    uint32_t id = kNoField;
  };
  // The first 8 bytes of s as a number (little end first), zero-padded.
  static uint64_t Head(std::string_view s) {
    uint64_t h = 0;
    if (s.size() >= 8) {
      std::memcpy(&h, s.data(), 8);
      return h;
    }
    for (size_t i = 0; i < s.size(); ++i) h |= uint64_t{static_cast<uint8_t>(s[i])} << (8 * i);
    return h;
  }
  static size_t Mix(uint64_t head, size_t size) {
    uint64_t h = (head ^ (size * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
  void Place(uint32_t id);
  void Rehash(size_t capacity);

  std::vector<std::string> names_;
  std::vector<Slot> slots_;  // open addressing, a power of two, at most half full
  uint32_t kind_id_ = kNoField;
  uint32_t ts_id_ = kNoField;
};

// One event's fields by number, for the FieldNames it is bound to. Load() per event costs one
// FieldNames::Find per field of the event; Get() is then two loads. Keeps a pointer to the event
// given to Load(), which must outlive the reads.
class EventFields {
 public:
  // Numbers from `names` (null: none; every read goes by name). Sizes the table: call when the
  // rules change, not per event.
  void Bind(const FieldNames* names);
  const FieldNames* names() const { return names_; }
  // True if bound to `names` as it is now (a FieldNames made later at the same address, with
  // another size, is not the same).
  bool BoundTo(const FieldNames& names) const {
    return names_ == &names && slots_.size() == names.size();
  }

  void Load(const Event& ev) {
    ev_ = &ev;
    if (names_ == nullptr) return;
    if (++gen_ == 0) {  // wrapped: stamps from 2^32 events ago would look current
      for (Slot& s : slots_) s.gen = 0;
      gen_ = 1;
    }
    const uint32_t n = static_cast<uint32_t>(ev.fields.size());
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t id = names_->Find(ev.fields[i].name);
      if (id == kNoField) continue;
      Slot& s = slots_[id];
      if (s.gen != gen_) s = {gen_, i};  // the first field of a name wins, as in Event::Get
    }
  }
  const Event& event() const { return *ev_; }
  // True if `ev` is the event loaded last and not released since.
  bool Holds(const Event* ev) const { return ev != nullptr && ev == ev_; }
  // Forgets the event (its storage may be reused for another one after this).
  void Release() { ev_ = nullptr; }

  // The field numbered `id` (from the bound FieldNames), or, for kNoField or when unbound,
  // the field named `name`.
  Value Get(uint32_t id, std::string_view name) const {
    if (id == kNoField || names_ == nullptr) return ev_->Get(name);
    const Slot s = slots_[id];
    if (s.gen == gen_) return ev_->fields[s.idx].value.view();
    if (id == names_->kind_id()) return Value::String(ev_->kind);
    if (id == names_->ts_id()) return Value::Number(static_cast<double>(ev_->ts_ms));
    return Value::Missing();
  }

 private:
  struct Slot {
    uint32_t gen = 0;
    uint32_t idx = 0;
  };
  const FieldNames* names_ = nullptr;
  const Event* ev_ = nullptr;
  std::vector<Slot> slots_;
  uint32_t gen_ = 0;
};

}  // namespace vigie::rules
