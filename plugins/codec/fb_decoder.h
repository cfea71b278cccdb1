#pragma once
// FlatBuffers event messages (schema/events.fbs, EventBatch, file identifier "VGEV") ->
// rules::Event, with the same semantics as the JSON form (see json_decoder.h).
//
// Telling the formats apart: a FlatBuffer starts with the little-endian uint32 offset of its root
// table, then the 4-byte file identifier. IsFlatBufferEvents() requires bytes 4..7 == "VGEV" AND
// byte 3 == 0x00. A JSON text can never have a NUL byte: RFC 8259 allows outside strings only
// structural characters, literals, digits and the whitespace bytes 0x20 0x09 0x0A 0x0D, and inside
// strings control characters (< 0x20) must be escaped. So "VGEV" alone could appear at bytes 4..7
// of a JSON text (["abVGEV"]), but not together with a 0 at byte 3. The root offset of a real
// buffer is small (the root table is written last, right after the header), so its top byte is
// always 0.
//
// Threading: one FbDecoder per thread (owns an aligned scratch buffer). Never throws.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "plugins/api/source.h"
#include "rules/event.h"

namespace vigie::codec {

bool IsFlatBufferEvents(std::string_view msg);

class FbDecoder {
 public:
  explicit FbDecoder(size_t max_message_bytes = 4 * 1024 * 1024);

  // Same contract as JsonDecoder::DecodeMessage. The buffer is verified (flatbuffers::Verifier,
  // max_tables derived from the message size, max_depth 16) before anything is read: a
  // truncated or garbage buffer, or one without the "VGEV" identifier, is rejected as a whole
  // (malformed). Per event: no or empty kind -> missing_kind; ts out of range -> bad_ts; a field
  // without a name -> malformed; a field of an unknown type (newer writer) is skipped.
  // The device string, when present, becomes the first field, "device".
  size_t DecodeMessage(std::string_view msg, int64_t ingest_ms, int64_t ingest_ns,
                       rules::EventBuffer* out, uint64_t* rejected);

 private:
  size_t max_bytes_;
  std::vector<uint64_t> aligned_;  // copy of a message whose data is not 8-byte aligned
};

}  // namespace vigie::codec
