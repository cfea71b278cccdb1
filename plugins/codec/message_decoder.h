#pragma once
// MessageDecoder: one ZeroMQ message (JSON or FlatBuffers, told apart by its first bytes, see
// fb_decoder.h) -> events. What a source runs on its receive thread.
//
// Threading: one per thread. Never throws.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "plugins/codec/fb_decoder.h"
#include "plugins/codec/json_decoder.h"

namespace vigie::codec {

class MessageDecoder {
 public:
  explicit MessageDecoder(size_t max_message_bytes = 4 * 1024 * 1024)
      : json_(max_message_bytes), fb_(max_message_bytes) {}

  // Same contract as JsonDecoder::DecodeMessage.
  size_t DecodeMessage(std::string_view msg, int64_t ingest_ms, int64_t ingest_ns,
                       rules::EventBuffer* out, uint64_t* rejected) {
    if (IsFlatBufferEvents(msg)) return fb_.DecodeMessage(msg, ingest_ms, ingest_ns, out, rejected);
    return json_.DecodeMessage(msg, ingest_ms, ingest_ns, out, rejected);
  }

  JsonDecoder& json() { return json_; }

 private:
  JsonDecoder json_;
  FbDecoder fb_;
};

}  // namespace vigie::codec
