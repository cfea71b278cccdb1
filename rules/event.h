#pragma once
// Event: one decoded sensor event, the unit that flows source -> router -> shard -> rules.
// Plain data, owned by whoever holds it (a batch buffer in the pipeline, an EventBuffer in a
// source, a vector in replay). Decoders fill it; the rules engine only reads it. Not thread-safe;
// moved between threads by value through queues.
//
// Recycling: events live in recycled containers (EventBuffer below, the pipeline's batches) and
// are cleared and refilled, not destroyed. Event::Clear() keeps the capacity of `kind`, of the
// field list and of every field's strings (FieldList keeps removed fields as spent slots), so a
// refilled event allocates nothing once its buffers have grown to the sizes the stream needs.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/value.h"

namespace vigie::rules {

struct Field {
  std::string name;  // dotted for flattened objects: "gps.lat"
  OwnedValue value;
};

// The fields of an Event: a std::vector<Field> for the live fields [0, size()), which also keeps
// the fields removed by clear(), pop_back(), erase() or a shrinking resize() as spent slots, so
// that refilling reuses their strings' buffers (a field name or a string value longer than the
// 15 bytes std::string holds inline would otherwise be reallocated for every event). A slot
// handed out again by emplace_back() / resize() is reset (empty name, missing value). Copying
// copies the live fields only (assignment reuses the target's slots); moving moves everything.
class FieldList {
 public:
  using value_type = Field;
  using size_type = size_t;
  using reference = Field&;
  using const_reference = const Field&;
  using iterator = Field*;
  using const_iterator = const Field*;

  FieldList() = default;
  FieldList(std::initializer_list<Field> init) : slots_(init), n_(slots_.size()) {}
  FieldList(const FieldList& o) : slots_(o.begin(), o.end()), n_(o.n_) {}
  FieldList(FieldList&& o) noexcept : slots_(std::move(o.slots_)), n_(std::exchange(o.n_, 0)) {
    o.slots_.clear();
  }
  FieldList& operator=(const FieldList& o) {
    if (this != &o) {
      for (size_t i = 0; i < o.n_; ++i) {
        if (i < slots_.size()) {
          slots_[i] = o.slots_[i];
        } else {
          slots_.push_back(o.slots_[i]);
        }
      }
      n_ = o.n_;
    }
    return *this;
  }
  FieldList& operator=(FieldList&& o) noexcept {
    if (this != &o) {
      slots_ = std::move(o.slots_);
      o.slots_.clear();
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  size_t capacity() const { return slots_.capacity(); }
  // Grows geometrically (decoders reserve the exact count of each event they fill; a recycled
  // event then reallocates O(log n) times, not once per larger event).
  void reserve(size_t n) {
    if (n > slots_.capacity()) slots_.reserve(std::max(n, 2 * slots_.capacity()));
  }

  Field* data() { return slots_.data(); }
  const Field* data() const { return slots_.data(); }
  iterator begin() { return slots_.data(); }
  iterator end() { return slots_.data() + n_; }
  const_iterator begin() const { return slots_.data(); }
  const_iterator end() const { return slots_.data() + n_; }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const { return end(); }
  Field& operator[](size_t i) { return slots_[i]; }
  const Field& operator[](size_t i) const { return slots_[i]; }
  Field& front() { return slots_[0]; }
  const Field& front() const { return slots_[0]; }
  Field& back() { return slots_[n_ - 1]; }
  const Field& back() const { return slots_[n_ - 1]; }

  // Appends a field: a reset spent slot when there is one (no allocation), else a new one.
  template <class... Args>
  Field& emplace_back(Args&&... args) {
    if constexpr (sizeof...(Args) == 0) {
      return Next();
    } else {
      return Next() = Field{std::forward<Args>(args)...};
    }
  }
  void push_back(const Field& f) { Next() = f; }
  void push_back(Field&& f) { Next() = std::move(f); }
  void pop_back() {
    assert(n_ > 0);
    --n_;
  }
  // Removes one field, keeping the order of the others (its slot becomes spent).
  iterator erase(const_iterator pos) {
    Field* p = begin() + (pos - cbegin());
    std::rotate(p, p + 1, end());
    --n_;
    return p;
  }
  void clear() { n_ = 0; }
  // Grows with reset fields, shrinks keeping the removed ones spent.
  void resize(size_t n) {
    while (n_ < n) Next();
    n_ = n;
  }

 private:
  Field& Next() {
    if (n_ < slots_.size()) {
      Field& f = slots_[n_++];
      f.name.clear();
      f.value.Assign(Value::Missing());
      return f;
    }
    slots_.emplace_back();
    ++n_;
    return slots_.back();
  }

  std::vector<Field> slots_;  // [0, n_) live, the rest spent
  size_t n_ = 0;
};

struct Event {
  int64_t ts_ms = 0;      // event time, ms since the Unix epoch (ingest time if the event had none)
  bool has_ts = false;    // false when ts_ms was filled from ingest time / the previous event
  int64_t ingest_ns = 0;  // steady-clock ns at decode (latency metrics); 0 when unknown
  bool is_copy = false;   // a second copy routed to another shard (not counted twice)
  std::string kind;       // required
  FieldList fields;       // every member but ts and kind, "device" included

  // Field lookup by name. "kind" and "ts" are also readable as fields (kind as a string,
  // ts as a number of ms) unless the event carries a member of that name.
  Value Get(std::string_view name) const;
  bool Has(std::string_view name) const { return !Get(name).missing(); }

  // Empties the event, keeping the capacity of kind, fields and the fields' strings.
  void Clear() {
    ts_ms = 0;
    has_ts = false;
    ingest_ns = 0;
    is_copy = false;
    kind.clear();
    fields.clear();
  }
  void Set(std::string_view name, const Value& v);  // replaces or appends
};

// Software prefetch of an event another thread wrote (a shard reading its batch): at full load
// the first touch of an event's kind and fields was a cache miss from the source's core, and
// Event::Get and the kind lookup showed it (46 % of a shard's samples). Two stages, so that no
// pointer is read from a line still in flight: PrefetchEvent(e) asks for the event itself;
// PrefetchEventData(e), an event or more later, for what its pointers point at (kind text when
// not inline, the field array; field names and values are inline when short).
inline void PrefetchEvent(const Event& ev) {
  __builtin_prefetch(&ev);
  __builtin_prefetch(reinterpret_cast<const char*>(&ev) + 64);
}
inline void PrefetchEventData(const Event& ev) {
  __builtin_prefetch(ev.kind.data());
  const char* f = reinterpret_cast<const char*>(ev.fields.data());
  const size_t bytes = ev.fields.size() * sizeof(Field);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(f + off);
}

// A recycled list of events: what a source decodes messages into and hands to its
// EventConsumer (plugins/api/source.h). Events [0, size()) are live; the slots past size() hold
// spent events kept for their buffers, so that once warmed up, appending and filling an event
// allocates nothing. A consumer may swap live events with spent ones of its own (the router
// does, with its recycled batches): after Consume() the slots hold unspecified but reusable
// events, and the source Clear()s the buffer before decoding again.
// Not thread-safe: owned by one thread at a time.
class EventBuffer {
 public:
  EventBuffer() = default;
  EventBuffer(std::initializer_list<Event> init) {
    for (const Event& ev : init) Push(ev);
  }

  // A new last event, cleared (Event::Clear: buffers kept). Allocates only when every slot is
  // live (the buffer grows to its high-water mark, then stays).
  Event& Append() {
    if (n_ < slots_.size()) {
      Event& ev = slots_[n_++];
      ev.Clear();
      return ev;
    }
    slots_.emplace_back();
    ++n_;
    return slots_.back();
  }
  // Appends a copy of ev (reusing a spent slot's buffers): tests and tools.
  void Push(const Event& ev) { Append() = ev; }
  // Removes the last event (a decoder rejecting the one it just appended); its slot is kept.
  void PopBack() {
    assert(n_ > 0);
    --n_;
  }
  // Removes every event, keeping every slot.
  void Clear() { n_ = 0; }
  // Room for n events without growing the slot vector (spent slots are made by Append only).
  void Reserve(size_t n) { slots_.reserve(n); }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  size_t slots() const { return slots_.size(); }  // live + spent
  Event& operator[](size_t i) { return slots_[i]; }
  const Event& operator[](size_t i) const { return slots_[i]; }
  Event& back() { return slots_[n_ - 1]; }
  const Event& back() const { return slots_[n_ - 1]; }
  Event* begin() { return slots_.data(); }
  Event* end() { return slots_.data() + n_; }
  const Event* begin() const { return slots_.data(); }
  const Event* end() const { return slots_.data() + n_; }

 private:
  std::vector<Event> slots_;  // [0, n_) live, the rest spent
  size_t n_ = 0;
};

}  // namespace vigie::rules
