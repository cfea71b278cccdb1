#pragma once
// Helpers shared by the rule engine tests (loader_test, engine_test, replay_test): compile rules
// from text, collect outputs, build events, render outputs as normalized JSON (seq dropped).
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "plugins/codec/output_codec.h"
#include "rules/event.h"
#include "rules/loader.h"
#include "rules/output.h"
#include "rules/rule.h"
#include "rules/timefmt.h"

namespace vigie::rules::testing {

inline std::shared_ptr<const RuleSet> MustCompile(const std::string& yaml,
                                                  const std::string& file = "rules.yaml") {
  std::vector<LoadError> errors;
  auto rs = CompileRules({RuleSource{file, yaml}}, &errors);
  std::string all;
  for (const auto& e : errors) all += e.ToString() + "\n";
  INFO(all);
  REQUIRE(rs != nullptr);
  return rs;
}

struct Collect : OutputSink {
  std::vector<Output> outs;
  void Emit(Output&& o) override { outs.push_back(std::move(o)); }
};

// A field value for MakeEvent.
struct FV {
  FV(double d) : v(Value::Number(d)) {}
  FV(int d) : v(Value::Number(d)) {}
  FV(const char* s) : v(Value::String(s)) {}
  FV(bool b) : v(Value::Bool(b)) {}
  Value v;
};

inline Event MakeEvent(int64_t ts, const std::string& kind,
                       std::initializer_list<std::pair<const char*, FV>> fields) {
  Event e;
  e.ts_ms = ts;
  e.has_ts = true;
  e.kind = kind;
  for (const auto& [n, v] : fields) e.Set(n, v.v);
  return e;
}

// The output as JSON with seq 0 (and members in the codec's fixed order).
inline std::string Render(const Output& o) {
  Output c = o;
  c.seq = 0;
  c.ingest_ns = 0;
  std::string s;
  codec::EncodeOutputJson(c, &s);
  // Round trip so that nested params are in the decoder's compact form on both sides.
  Output d;
  if (!codec::DecodeOutputJson(s, &d)) return "UNDECODABLE " + s;
  d.seq = 0;
  codec::EncodeOutputJson(d, &s);
  return s;
}

inline std::string RenderExpected(const std::string& line) {
  Output d;
  if (!codec::DecodeOutputJson(line, &d)) return "BAD EXPECTED LINE " + line;
  d.seq = 0;
  std::string s;
  codec::EncodeOutputJson(d, &s);
  return s;
}

inline std::string RenderAll(const std::vector<Output>& outs) {
  std::string s;
  for (const auto& o : outs) s += Render(o) + "\n";
  return s;
}

// Compact one-line summaries for engine tests: "21:00:10 rule key command action" etc.
inline std::string Brief(const Output& o) {
  std::string s = FormatRfc3339Ms(o.ts_ms).substr(11, 12) + " " + o.rule + " " + o.key + " ";
  if (o.type == OutputType::kCommand) {
    s += "cmd " + o.target + " " + o.action;
    for (const auto& p : o.params) {
      s += " " + p.name + "=";
      if (p.value.kind == ParamValue::Kind::kNumber) {
        AppendNumber(&s, p.value.num);
      } else {
        s += p.value.str;
      }
    }
  } else {
    s += "alert " + o.state + " " + o.severity + " " + o.summary;
  }
  return s;
}

inline std::vector<std::string> BriefAll(const std::vector<Output>& outs) {
  std::vector<std::string> v;
  for (const auto& o : outs) v.push_back(Brief(o));
  return v;
}

constexpr int64_t kT0 = 1795726800000;  // 2026-11-26T21:00:00Z, a Thursday (22:00 in Paris)
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60000;

}  // namespace vigie::rules::testing
