#pragma once
// Event: one decoded sensor event, the unit that flows source -> router -> shard -> rules.
// Plain data, owned by whoever holds it (a batch buffer in the pipeline, a vector in replay).
// Decoders fill it; the rules engine only reads it. Not thread-safe; moved between threads by
// value through queues.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rules/value.h"

namespace vigie::rules {

struct Field {
  std::string name;  // dotted for flattened objects: "gps.lat"
  OwnedValue value;
};

struct Event {
  int64_t ts_ms = 0;       // event time, ms since the Unix epoch (ingest time if the event had none)
  bool has_ts = false;     // false when ts_ms was filled from ingest time / the previous event
  int64_t ingest_ns = 0;   // steady-clock ns at decode (latency metrics); 0 when unknown
  bool is_copy = false;    // a second copy routed to another shard (not counted twice)
  std::string kind;        // required
  std::vector<Field> fields;  // every member but ts and kind, "device" included

  // Field lookup by name. "kind" and "ts" are also readable as fields (kind as a string,
  // ts as a number of ms) unless the event carries a member of that name.
  Value Get(std::string_view name) const;
  bool Has(std::string_view name) const { return !Get(name).missing(); }

  // Reuses capacity (events live in recycled batch buffers).
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

}  // namespace vigie::rules
