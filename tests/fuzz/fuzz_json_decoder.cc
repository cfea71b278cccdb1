// libFuzzer: JSON event messages. Checks that decoding never crashes, that every decoded event
// is valid (non-empty kind, ts in range), and that re-encoding the decoded events and decoding
// them again gives the same events (the encoder and decoder agree).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "plugins/codec/event_encoder.h"
#include "plugins/codec/json_decoder.h"
#include "plugins/codec/json_text.h"

namespace {

bool SameEvent(const vigie::rules::Event& a, const vigie::rules::Event& b) {
  if (a.kind != b.kind || a.ts_ms != b.ts_ms || a.has_ts != b.has_ts ||
      a.fields.size() != b.fields.size()) {
    return false;
  }
  for (size_t i = 0; i < a.fields.size(); ++i) {
    if (a.fields[i].name != b.fields[i].name ||
        !vigie::rules::SameValue(a.fields[i].value.view(), b.fields[i].value.view())) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vigie::codec::JsonDecoder decoder(1 << 20);  // one per thread: the fuzzer has one
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  static vigie::rules::EventBuffer out;  // recycled, as in a source: slots carry old buffers
  out.Clear();
  uint64_t rejected[static_cast<int>(vigie::plugins::RejectReason::kCount_)] = {};
  const size_t n = decoder.DecodeMessage(msg, 1000, 1, &out, rejected);
  if (n != out.size()) __builtin_trap();
  for (const auto& e : out) {
    if (e.kind.empty()) __builtin_trap();
    if (e.has_ts && !vigie::codec::ValidEventTs(e.ts_ms)) __builtin_trap();
  }
  if (!out.empty()) {
    std::string again;
    vigie::codec::EncodeEventBatchJson(std::vector<vigie::rules::Event>(out.begin(), out.end()),
                                       &again);
    static vigie::rules::EventBuffer back;
    back.Clear();
    uint64_t rej2[static_cast<int>(vigie::plugins::RejectReason::kCount_)] = {};
    decoder.DecodeMessage(again, 1000, 1, &back, rej2);
    if (back.size() != out.size()) __builtin_trap();
    for (size_t i = 0; i < out.size(); ++i) {
      if (!SameEvent(out[i], back[i])) __builtin_trap();
    }
  }
  // The replay path: one object per line, human messages.
  vigie::rules::Event ev;
  std::string error;
  if (!decoder.DecodeEvent(msg, 1000, &ev, &error) && error.empty()) __builtin_trap();
  return 0;
}
