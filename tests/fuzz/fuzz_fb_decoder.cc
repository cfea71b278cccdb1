// libFuzzer: FlatBuffers event messages (and output messages: consumers decode those). Checks
// that no buffer crashes the verifier-guarded readers and that decoded events are valid.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plugins/codec/fb_decoder.h"
#include "plugins/codec/json_text.h"
#include "plugins/codec/output_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vigie::codec::FbDecoder decoder(1 << 20);
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  static vigie::rules::EventBuffer out;  // recycled, as in a source: slots carry old buffers
  out.Clear();
  uint64_t rejected[static_cast<int>(vigie::plugins::RejectReason::kCount_)] = {};
  decoder.DecodeMessage(msg, 1000, 1, &out, rejected);
  for (const auto& e : out) {
    if (e.kind.empty()) __builtin_trap();
    if (e.has_ts && !vigie::codec::ValidEventTs(e.ts_ms)) __builtin_trap();
  }
  vigie::rules::Output o;
  if (vigie::codec::DecodeOutputFlatbuffers(msg, &o)) {
    // What decodes must encode again (both forms) without trouble.
    std::string json;
    vigie::codec::EncodeOutputJson(o, &json);
    flatbuffers::FlatBufferBuilder b;
    vigie::codec::EncodeOutputFlatbuffers(o, &b);
  }
  return 0;
}
