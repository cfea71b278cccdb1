// Writes a few FlatBuffers EventBatch messages (seeds for fuzz_fb_decoder) into the directory
// given as argv[1]: seed-1.bin ... Run by hand when the schema changes:
//   build-fuzz/tests/fuzz/fuzz_make_fb_seeds tests/fuzz/corpus/fuzz_fb_decoder
#include <cstdio>
#include <string>
#include <vector>

#include "plugins/codec/event_encoder.h"
#include "plugins/codec/output_codec.h"

using vigie::rules::Event;
using vigie::rules::Value;

namespace {

bool Write(const std::string& path, const void* data, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, n, f) == n;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  Event cam;
  cam.kind = "camera.status";
  cam.ts_ms = 1764194400000;
  cam.has_ts = true;
  cam.Set("device", Value::String("cam-17"));
  cam.Set("status", Value::String("fault"));
  cam.Set("code", Value::Number(12));
  Event bin;
  bin.kind = "bin.level";
  bin.Set("device", Value::String("bin-1"));
  bin.Set("fill", Value::Number(90.5));
  bin.Set("gps.lat", Value::Number(47.32));
  bin.Set("lid_open", Value::Bool(true));
  Event no_kind;
  no_kind.Set("x", Value::Number(1));
  std::vector<std::vector<Event>> batches = {{cam}, {cam, bin}, {bin, no_kind, cam}, {}};
  flatbuffers::FlatBufferBuilder b;
  int n = 0;
  for (const auto& batch : batches) {
    vigie::codec::EncodeEventBatchFlatbuffers(batch, &b);
    if (!Write(dir + "/seed-" + std::to_string(++n) + ".bin", b.GetBufferPointer(), b.GetSize())) {
      std::perror("write");
      return 1;
    }
  }
  // One output message too (the fuzz target also reads those).
  vigie::rules::Output o;
  o.seq = 3;
  o.ts_ms = 1764194400000;
  o.rule = "dim";
  o.key = "z42";
  o.target = "lights/z42";
  o.action = "dim";
  o.params.push_back({"level", {vigie::rules::ParamValue::Kind::kNumber, 30, false, ""}});
  vigie::codec::EncodeOutputFlatbuffers(o, &b);
  if (!Write(dir + "/seed-output.bin", b.GetBufferPointer(), b.GetSize())) return 1;
  return 0;
}
