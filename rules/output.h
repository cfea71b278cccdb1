#pragma once
// Output: a command or an alert produced by a rule's state change. Produced by the engine on a
// shard thread, handed by value to the output dispatcher, which stamps `seq` and encodes it for
// the sinks (JSON or FlatBuffers, see plugins/codec). Plain data.
//
// Recycling: the engine fills the Output its sink hands out (OutputSink::NewOutput). The daemon's
// shard sink hands out outputs the dispatcher has sent and given back, whose strings and lists
// have already grown, so that an event that fires allocates nothing once the pool is warm
// (tests/rules/alloc, tests/daemon/alloc).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rules/slot_list.h"

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

using Label = std::pair<std::string, std::string>;

template <>
struct SlotReset<Param> {
  void operator()(Param& p) const {
    p.name.clear();
    p.value.kind = ParamValue::Kind::kNull;
    p.value.num = 0;
    p.value.b = false;
    p.value.str.clear();
  }
};
template <>
struct SlotReset<Label> {
  void operator()(Label& l) const {
    l.first.clear();
    l.second.clear();
  }
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
  SlotList<Param> params;
  // alert
  std::string state;       // "firing" | "resolved"
  std::string severity;    // "info" | "warning" | "critical"
  std::string summary;
  SlotList<Label> labels;

  // Empties it for reuse: every string keeps its buffer, those inside params and labels too
  // (SlotList keeps removed elements as spent slots).
  void Clear() {
    type = OutputType::kCommand;
    seq = 0;
    ts_ms = 0;
    ingest_ns = 0;
    rule.clear();
    key.clear();
    target.clear();
    action.clear();
    params.clear();
    state.clear();
    severity.clear();
    summary.clear();
    labels.clear();
  }
};

// Where the engine puts what it produces. Implemented by the shard worker (queue to the
// dispatcher), the replay driver (collect and print) and tests (collect).
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  // An empty output for the engine to fill and then pass to Emit (each NewOutput is followed by
  // exactly one Emit of what it returned, before the next NewOutput). A sink that recycles
  // outputs returns one whose buffers have grown already; this default keeps a single spare,
  // which Emit may move from (then the next output allocates, as a fresh one would).
  virtual Output& NewOutput() {
    spare_.Clear();
    return spare_;
  }
  virtual void Emit(Output&& out) = 0;

 private:
  Output spare_;
};

}  // namespace vigie::rules
