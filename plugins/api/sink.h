#pragma once
// Sink: an output plugin. Called only from the output dispatcher thread. A sink encodes each
// Output in its configured format (json | flatbuffers) and sends it as two frames: the topic
// (a command's target, or "alert/<severity>/<rule>"), then the payload.
#include <atomic>
#include <cstdint>
#include <string>

#include "rules/output.h"

namespace vigie::plugins {

struct SinkStats {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> dropped{0};   // could not be sent (would block past the high-water mark)
  std::atomic<uint64_t> bytes{0};
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual const std::string& name() const = 0;
  virtual bool Start(std::string* error) = 0;
  // Sends one output (seq already stamped). Never throws.
  virtual void Send(const rules::Output& out) = 0;
  virtual void Stop() = 0;
  virtual const SinkStats& stats() const = 0;
};

}  // namespace vigie::plugins
