#pragma once
// rules::Event -> wire forms, for the city simulator, the load generator, tools and tests.
//
// JSON: {"ts": 1764194400000, "kind": "camera.status", "device": "cam-17", "code": 12}
//   ts only when has_ts; then kind, then the fields in order (dotted names stay dotted; the
//   decoder reads them back under the same names). Missing-valued fields are left out; NaN and
//   infinities become null (which the decoder skips).
// FlatBuffers: one EventBatch (schema/events.fbs, identifier "VGEV"); the first string field
//   named "device" goes into Event.device, every other field into Event.fields.
//
// Threading: the free functions are pure; an EventBatchEncoder (which keeps scratch vectors so
// that encoding many batches does not allocate) belongs to one thread.
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "rules/event.h"

namespace vigie::codec {

// Appends one event object to *out.
void AppendEventJson(const rules::Event& ev, std::string* out);
// Replaces *out with one event object.
void EncodeEventJson(const rules::Event& ev, std::string* out);
// Replaces *out with a JSON array of the events (a batch message).
void EncodeEventBatchJson(const std::vector<rules::Event>& events, std::string* out);

class EventBatchEncoder {
 public:
  // Clears the builder and finishes it with an EventBatch of the events.
  void Encode(const rules::Event* events, size_t n, flatbuffers::FlatBufferBuilder* builder);
  void Encode(const std::vector<rules::Event>& events, flatbuffers::FlatBufferBuilder* builder) {
    Encode(events.data(), events.size(), builder);
  }

 private:
  std::vector<flatbuffers::Offset<void>> events_;
  std::vector<flatbuffers::Offset<void>> fields_;
};

// Convenience: a one-off EventBatchEncoder.
void EncodeEventBatchFlatbuffers(const std::vector<rules::Event>& events,
                                 flatbuffers::FlatBufferBuilder* builder);

}  // namespace vigie::codec
