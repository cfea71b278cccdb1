// libFuzzer: the rule loader (YAML text -> compiled rules or FILE:LINE:COLUMN errors). It must
// never crash or throw, and must explain every refusal.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "rules/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<vigie::rules::LoadError> errors;
  auto set = vigie::rules::CompileRules(
      {{"fuzz.yaml", std::string(reinterpret_cast<const char*>(data), size)}}, &errors);
  if (set == nullptr && errors.empty()) __builtin_trap();
  for (const auto& e : errors) {
    if (e.ToString().empty()) __builtin_trap();
  }
  return 0;
}
