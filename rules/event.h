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

#include "rules/prefetch.h"
#include "rules/slot_list.h"
#include "rules/value.h"

namespace vigie::rules {

struct Field {
  std::string name;  // dotted for flattened objects: "gps.lat"
  OwnedValue value;
};

template <>
struct SlotReset<Field> {
  void operator()(Field& f) const {
    f.name.clear();
    f.value.Assign(Value::Missing());
  }
};

// The fields of an Event (rules/slot_list.h): removed fields stay as spent slots whose name and
// value buffers the next fields reuse; a slot handed out again is reset (empty name, missing
// value).
using FieldList = SlotList<Field>;

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
  Prefetch(&ev);
  Prefetch(reinterpret_cast<const char*>(&ev) + 64);
}
inline void PrefetchEventData(const Event& ev) {
  Prefetch(ev.kind.data());
  const char* f = reinterpret_cast<const char*>(ev.fields.data());
  const size_t bytes = ev.fields.size() * sizeof(Field);
  for (size_t off = 0; off < bytes; off += 64) Prefetch(f + off);
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
