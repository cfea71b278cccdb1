#include "plugins/codec/event_encoder.h"

#include "plugins/codec/json_text.h"
#include "schema/vigie_generated.h"

namespace vigie::codec {

void AppendEventJson(const rules::Event& ev, std::string* out) {
  out->push_back('{');
  if (ev.has_ts) {
    out->append("\"ts\": ");
    AppendInt(out, ev.ts_ms);
    out->append(", ");
  }
  out->append("\"kind\": ");
  AppendJsonString(out, ev.kind);
  for (const rules::Field& f : ev.fields) {
    if (f.value.type == rules::Type::kMissing) continue;
    out->append(", ");
    AppendJsonString(out, f.name);
    out->append(": ");
    switch (f.value.type) {
      case rules::Type::kNumber: AppendJsonNumber(out, f.value.num); break;
      case rules::Type::kString: AppendJsonString(out, f.value.str); break;
      case rules::Type::kBool: out->append(f.value.b ? "true" : "false"); break;
      case rules::Type::kMissing: break;
    }
  }
  out->push_back('}');
}

void EncodeEventJson(const rules::Event& ev, std::string* out) {
  out->clear();
  AppendEventJson(ev, out);
}

void EncodeEventBatchJson(const std::vector<rules::Event>& events, std::string* out) {
  out->clear();
  out->push_back('[');
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) out->append(", ");
    AppendEventJson(events[i], out);
  }
  out->push_back(']');
}

void EventBatchEncoder::Encode(const rules::Event* events, size_t n,
                               flatbuffers::FlatBufferBuilder* b) {
  b->Clear();
  events_.clear();
  for (size_t i = 0; i < n; ++i) {
    const rules::Event& ev = events[i];
    fields_.clear();
    flatbuffers::Offset<flatbuffers::String> device;
    for (const rules::Field& f : ev.fields) {
      if (device.IsNull() && f.name == "device" && f.value.type == rules::Type::kString) {
        device = b->CreateString(f.value.str);
        continue;
      }
      auto name = b->CreateString(f.name);
      flatbuffers::Offset<flatbuffers::String> str;
      fb::FieldType type;
      switch (f.value.type) {
        case rules::Type::kNumber: type = fb::FieldType::Number; break;
        case rules::Type::kString:
          type = fb::FieldType::String;
          str = b->CreateString(f.value.str);
          break;
        case rules::Type::kBool: type = fb::FieldType::Bool; break;
        default: continue;
      }
      fields_.push_back(fb::CreateField(*b, name, type, f.value.num, str, f.value.b).Union());
    }
    auto kind = b->CreateString(ev.kind);
    auto fields = b->CreateVector(
        reinterpret_cast<const flatbuffers::Offset<fb::Field>*>(fields_.data()), fields_.size());
    events_.push_back(
        fb::CreateEvent(*b, ev.has_ts ? ev.ts_ms : 0, ev.has_ts, kind, device, fields).Union());
  }
  auto vec = b->CreateVector(
      reinterpret_cast<const flatbuffers::Offset<fb::Event>*>(events_.data()), events_.size());
  fb::FinishEventBatchBuffer(*b, fb::CreateEventBatch(*b, vec));
}

void EncodeEventBatchFlatbuffers(const std::vector<rules::Event>& events,
                                 flatbuffers::FlatBufferBuilder* builder) {
  EventBatchEncoder enc;
  enc.Encode(events, builder);
}

}  // namespace vigie::codec
