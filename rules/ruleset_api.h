#pragma once
// The read-only surface of a compiled RuleSet that the daemon needs (routing, /rules, metrics).
// The full structure lives in rules/rule.h (private to rules/ and its tests).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rules/event.h"

namespace vigie::rules {

class RuleSet;

struct RuleInfo {
  std::string name;
  std::string description;
  std::string file;
  int line = 0;
  std::string kind;  // "stateless" | "sliding" | "tumbling" | "session" | "count" | "absence"
  uint64_t fingerprint = 0;  // of the state-relevant definition (reload keeps state if equal)
};

size_t RuleCount(const RuleSet& rs);
const RuleInfo& GetRuleInfo(const RuleSet& rs, size_t i);
size_t RuleFileCount(const RuleSet& rs);

// The shards (bit i = shard i; at most 64 shards) that must see `ev`: one per distinct group of
// the rules the event can match. 0 when no rule can match the event (it is then only counted).
// Thread-safe (const); called by the router on the source threads.
uint64_t RouteMask(const RuleSet& rs, const Event& ev, int shard_count);

}  // namespace vigie::rules
