#pragma once
// Output: a command or an alert produced by a rule's state change. Produced by the engine on a
// shard thread, handed by value to the output dispatcher, which stamps `seq` and encodes it for
// the sinks (JSON or FlatBuffers, see plugins/codec). Plain data.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vigie::rules {

// A command parameter keeps the YAML type it was written with. A template string is expanded
// (and stays a string). Nested maps/lists are kept as pre-rendered JSON text (kJson).
struct ParamValue {
  enum class Kind : uint8_t { kNull, kNumber, kString, kBool, kJson };
  Kind kind = Kind::kNull;
  double num = 0;
  bool b = false;
  std::string str;  // kString: the text; kJson: a JSON value
};

struct Param {
  std::string name;
  ParamValue value;
};

enum class OutputType : uint8_t { kCommand, kAlert };

struct Output {
  OutputType type = OutputType::kCommand;
  uint64_t seq = 0;        // stamped by the dispatcher (or the replay driver); 0 until then
  int64_t ts_ms = 0;       // engine time of the state change (a timer's own instant)
  int64_t ingest_ns = 0;   // ingest time of the triggering event (0 for timers): latency metric
  std::string rule;
  std::string key;         // the group's values joined with '/'
  // command
  std::string target;
  std::string action;
  std::vector<Param> params;
  // alert
  std::string state;       // "firing" | "resolved"
  std::string severity;    // "info" | "warning" | "critical"
  std::string summary;
  std::vector<std::pair<std::string, std::string>> labels;
};

// Where the engine puts what it produces. Implemented by the shard worker (queue to the
// dispatcher), the replay driver (collect and print) and tests (collect).
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void Emit(Output&& out) = 0;
};

}  // namespace vigie::rules
