#include "plugins/codec/fb_decoder.h"

#include <cstring>

#include "plugins/codec/json_text.h"
#include "schema/vigie_generated.h"

namespace vigie::codec {

using plugins::RejectReason;

bool IsFlatBufferEvents(std::string_view msg) {
  return msg.size() >= 8 && msg[3] == '\0' && std::memcmp(msg.data() + 4, "VGEV", 4) == 0;
}

FbDecoder::FbDecoder(size_t max_message_bytes) : max_bytes_(max_message_bytes) {}

namespace {

// Fills *ev (cleared, from EventBuffer::Append) from e; returns kCount_ on success or the reason
// to reject. Every assignment reuses the slot's buffers: no allocation once they have grown.
RejectReason DecodeOne(const fb::Event& e, int64_t ingest_ms, int64_t ingest_ns,
                       rules::Event* ev) {
  ev->ingest_ns = ingest_ns;
  const flatbuffers::String* kind = e.kind();
  if (kind == nullptr || kind->size() == 0) return RejectReason::kMissingKind;
  ev->kind.assign(kind->data(), kind->size());
  if (e.has_ts() || e.ts() != 0) {
    if (!ValidEventTs(e.ts())) return RejectReason::kBadTimestamp;
    ev->ts_ms = e.ts();
    ev->has_ts = true;
  } else {
    ev->ts_ms = ingest_ms;
  }
  ev->fields.reserve((e.fields() ? e.fields()->size() : 0) + (e.device() ? 1 : 0));
  if (const flatbuffers::String* dev = e.device()) {
    rules::Field& f = ev->fields.emplace_back();
    f.name.assign("device");
    f.value.Assign(rules::Value::String(dev->string_view()));
  }
  if (const auto* fields = e.fields()) {
    for (const fb::Field* f : *fields) {
      if (f->name() == nullptr) return RejectReason::kMalformed;
      rules::Value v;
      switch (f->type()) {
        case fb::FieldType::Number: v = rules::Value::Number(f->num()); break;
        case fb::FieldType::String:
          v = rules::Value::String(f->str() ? f->str()->string_view() : std::string_view());
          break;
        case fb::FieldType::Bool: v = rules::Value::Bool(f->b()); break;
        default: continue;  // a type from a newer schema: skipped
      }
      rules::Field& field = ev->fields.emplace_back();
      field.name.assign(f->name()->data(), f->name()->size());
      field.value.Assign(v);
    }
  }
  return RejectReason::kCount_;
}

}  // namespace

size_t FbDecoder::DecodeMessage(std::string_view msg, int64_t ingest_ms, int64_t ingest_ns,
                                rules::EventBuffer* out, uint64_t* rejected) {
  if (msg.size() > max_bytes_) {
    ++rejected[static_cast<int>(RejectReason::kOversize)];
    return 0;
  }
  const uint8_t* data = reinterpret_cast<const uint8_t*>(msg.data());
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    // Scalars are read in place: give them an aligned copy (zmq's small messages live inline).
    aligned_.resize((msg.size() + 7) / 8);
    std::memcpy(aligned_.data(), msg.data(), msg.size());
    data = reinterpret_cast<const uint8_t*>(aligned_.data());
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 16;
  // Every real table takes at least 8 bytes (vtable offset + one field), so this bounds the work
  // of a malicious buffer that points many offsets at the same table.
  opts.max_tables = static_cast<flatbuffers::uoffset_t>(msg.size() / 8 + 16);
  flatbuffers::Verifier verifier(data, msg.size(), opts);
  if (!IsFlatBufferEvents(msg) || !fb::VerifyEventBatchBuffer(verifier)) {
    ++rejected[static_cast<int>(RejectReason::kMalformed)];
    return 0;
  }
  const fb::EventBatch* batch = fb::GetEventBatch(data);
  const auto* events = batch->events();
  if (events == nullptr) return 0;
  size_t n = 0;
  for (const fb::Event* e : *events) {
    RejectReason r = DecodeOne(*e, ingest_ms, ingest_ns, &out->Append());
    if (r == RejectReason::kCount_) {
      ++n;
    } else {
      out->PopBack();
      ++rejected[static_cast<int>(r)];
    }
  }
  return n;
}

}  // namespace vigie::codec
