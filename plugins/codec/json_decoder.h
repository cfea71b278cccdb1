#pragma once
// JsonDecoder: JSON event messages -> rules::Event (INTERFACES.md "Events in").
//
// A message is one event object or an array of event objects (a batch). For each event:
//   - `kind` (top level) must be a non-empty string, else the event is rejected (missing_kind);
//   - `ts` (top level) is ms since the epoch (a number; a fraction is truncated) or an RFC 3339
//     string; anything else, or a time outside 1970..9999, rejects the event (bad_ts). Without
//     `ts` (or with "ts": null) the event takes ingest_ms and has_ts = false;
//   - every other member is a field: number, string or boolean; nested objects are flattened to
//     dotted names ({"gps": {"lat": 1}} -> "gps.lat"; a nested "ts"/"kind" is a plain field);
//     arrays and nulls are skipped; "device" is a plain field. Fields keep the message's order;
//     if a name repeats, both are kept and Event::Get returns the first.
// In a batch an element that is not an object is rejected (malformed) and the other events are
// kept. A message that is not well-formed JSON as a whole (syntax error, invalid UTF-8, trailing
// garbage, empty, nested deeper than 1024) is rejected entirely: one `malformed`, nothing
// appended. Integers beyond 64 bits are a simdjson parse error, hence malformed too.
//
// Threading: one JsonDecoder per thread (it owns a simdjson DOM parser — see the .cc for why not
// On Demand — and a padded copy buffer, both reused across messages: decoding into a recycled
// EventBuffer allocates nothing once the parser, the buffer and the events' strings have grown
// to the largest message seen). Never throws.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "plugins/api/source.h"
#include "rules/event.h"

namespace vigie::codec {

class JsonDecoder {
 public:
  // Messages larger than max_message_bytes are rejected (oversize) without being parsed.
  explicit JsonDecoder(size_t max_message_bytes = 4 * 1024 * 1024);
  ~JsonDecoder();
  JsonDecoder(const JsonDecoder&) = delete;
  JsonDecoder& operator=(const JsonDecoder&) = delete;

  // Appends (EventBuffer::Append) every valid event of msg to *out and adds one to
  // rejected[static_cast<int>(RejectReason)] for each rejected event (or once for a rejected
  // message). rejected points to an array of RejectReason::kCount_ counters. Each appended event
  // gets ingest_ns, and ingest_ms as ts_ms if it has no ts. Returns the number of events appended.
  size_t DecodeMessage(std::string_view msg, int64_t ingest_ms, int64_t ingest_ns,
                       rules::EventBuffer* out, uint64_t* rejected);

  // One event object (a line of a `vigie replay` file). On failure returns false and sets
  // *error to a human message: "not a JSON object: ...", "missing kind",
  // "ts is neither ms nor RFC 3339", "message too large (N bytes)". *ev is cleared first.
  bool DecodeEvent(std::string_view one_object, int64_t ingest_ms, rules::Event* ev,
                   std::string* error);

  size_t max_message_bytes() const { return max_bytes_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t max_bytes_;
};

}  // namespace vigie::codec
