// libFuzzer: the rule loader (YAML text -> compiled rules or FILE:LINE:COLUMN errors). It must
// never crash or throw, and must explain every refusal. When rules load, their expressions are
// evaluated too: for each rule the index files under a leading test, on events of its kinds that
// carry each of the test's constants (and other fields from the input), the rest of `where` that
// the engine evaluates for such events (ResidualAfterLeadingTest) must give the same result and
// the same error bits as the whole `where`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rules/expr.h"
#include "rules/loader.h"
#include "rules/rule.h"

namespace vr = vigie::rules;

namespace {

void CheckRule(const vr::RuleSet& rs, uint32_t i, const uint8_t* data, size_t size) {
  const vr::Rule& r = rs.rules[i];
  const vr::RuleIndex::Key& key = rs.index.key(i);
  if (key.field.empty() || r.on_exact.empty()) return;
  vr::EvalScratch scratch;
  std::vector<uint32_t> tagged;
  for (size_t c = 0; c < key.constants.size() && c < 4; ++c) {
    vr::Event ev;
    ev.kind = r.on_exact[0];
    ev.ts_ms = 1000;
    ev.Set(key.field, key.constants[c].view());
    // A few more fields, some typed from the input, so that the rest has something to read.
    for (const char* f : {"a", "b", "speed", "status", "zone"}) {
      if (f == key.field) continue;
      const uint8_t x = size ? data[(c * 7 + static_cast<size_t>(f[0])) % size] : 0;
      if (x % 4 == 0) continue;
      if (x % 4 == 1) ev.Set(f, vr::Value::Number(x % 32));
      if (x % 4 == 2) ev.Set(f, vr::Value::String(x % 8 < 4 ? "a" : "ok"));
      if (x % 4 == 3) ev.Set(f, vr::Value::Bool(x % 8 < 4));
    }
    rs.MatchTagged(ev, &tagged);
    for (uint32_t m : tagged) {
      if ((m >> 1) != i || !(m & 1) || !r.where || !r.where_rest_ok) continue;
      vr::EvalContext whole, rest;
      whole.event = rest.event = &ev;
      whole.scratch = rest.scratch = &scratch;
      const bool w = vr::EvalCondition(*r.where, whole);
      scratch.Reset();
      const bool p = r.where_rest ? vr::EvalCondition(*r.where_rest, rest) : true;
      scratch.Reset();
      if (w != p || whole.errors != rest.errors) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<vr::LoadError> errors;
  auto set = vr::CompileRules(
      {{"fuzz.yaml", std::string(reinterpret_cast<const char*>(data), size)}}, &errors);
  if (set == nullptr && errors.empty()) __builtin_trap();
  for (const auto& e : errors) {
    if (e.ToString().empty()) __builtin_trap();
  }
  if (set != nullptr) {
    for (uint32_t i = 0; i < set->rules.size() && i < 64; ++i) CheckRule(*set, i, data, size);
  }
  return 0;
}
