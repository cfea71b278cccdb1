#pragma once
// Helpers for the durable-state tests (engine_test, state_format_test): the store's keys written
// out by hand from rules/README.md "Durable state", and a view of a store or a delta group by
// group, whatever packs hold them.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "rules/bytes.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "rules/ruleset_api.h"

namespace vigie::rules::testing {

// "g/" <format> <rule id, 8 bytes big-endian>, the rule id being FNV-1a of the fingerprint's 8
// little-endian bytes, seeded with FNV-1a of the rule's name.
inline std::string RulePrefix(const RuleSet& rs, const std::string& rule, char format) {
  int idx = rs.FindRule(rule);
  REQUIRE(idx >= 0);
  const uint64_t fp = GetRuleInfo(rs, idx).fingerprint;
  char fpb[8];
  for (int i = 0; i < 8; ++i) fpb[i] = static_cast<char>(fp >> (8 * i));
  const uint64_t id = Fnv1a(std::string_view(fpb, 8), Fnv1a(rule));
  std::string k(Engine::StatePrefix());
  k.push_back(format);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(id >> (8 * i)));
  return k;
}

// A group's own key (format 2): written by TakeChanged.
inline std::string StateKey(const RuleSet& rs, const std::string& rule, const std::string& key) {
  return RulePrefix(rs, rule, '\x02') + key;
}

// A pack's key (format 3): <shard count, 2 bytes> <shard, 2> <bucket, 4>, big-endian.
inline std::string PackKey(const RuleSet& rs, const std::string& rule, int shard_count, int shard,
                           uint32_t bucket) {
  std::string k = RulePrefix(rs, rule, '\x03');
  const char tail[8] = {static_cast<char>(shard_count >> 8), static_cast<char>(shard_count),
                        static_cast<char>(shard >> 8),       static_cast<char>(shard),
                        static_cast<char>(bucket >> 24),     static_cast<char>(bucket >> 16),
                        static_cast<char>(bucket >> 8),      static_cast<char>(bucket)};
  return k + std::string(tail, sizeof(tail));
}

inline bool IsPackKey(std::string_view k) { return k.size() > 2 && k[2] == '\x03'; }

// Calls fn(own key, format 2 value) for every group a pack holds; false if it is unreadable.
template <class Fn>
bool ForEachPacked(std::string_view key, std::string_view value, Fn fn) {
  REQUIRE(key.size() == 19);
  const std::string own = "g/\x02" + std::string(key.substr(3, 8));
  ByteReader rd(value);
  uint8_t format;
  uint64_t n;
  if (!rd.U8(&format) || format != 3 || !rd.Var(&n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view gk, gv;
    if (!rd.Str(&gk) || !rd.Str(&gv)) return false;
    fn(own + std::string(gk), gv);
  }
  return rd.done();
}

using KV = std::map<std::string, std::string>;

// What the state layer does with a delta: prefix deletes, then deletes, then puts.
inline void Apply(const StateDelta& d, KV* kv) {
  for (const auto& p : d.delete_prefixes) {
    for (auto it = kv->lower_bound(p); it != kv->end() && it->first.compare(0, p.size(), p) == 0;)
      it = kv->erase(it);
  }
  for (const auto& k : d.deletes) kv->erase(k);
  for (const auto& [k, v] : d.puts) (*kv)[std::string(k)] = v;
}

// The store group by group, under each group's own key: a group's own key wins over its copy
// in a pack (it is the newer one).
inline KV Groups(const KV& store) {
  KV out;
  for (const auto& [k, v] : store) {
    if (!IsPackKey(k)) continue;
    CHECK(ForEachPacked(k, v, [&](const std::string& gk, std::string_view gv) {
      CHECK(out.count(gk) == 0);  // a group is in one pack
      out[gk] = std::string(gv);
    }));
  }
  for (const auto& [k, v] : store)
    if (!IsPackKey(k)) out[k] = v;
  return out;
}

// The groups a delta puts (each group's own key), in order.
inline std::vector<std::string> GroupsPut(const StateDelta& d) {
  std::vector<std::string> out;
  for (const auto& [k, v] : d.puts) {
    if (!IsPackKey(k)) {
      out.emplace_back(k);
      continue;
    }
    CHECK(ForEachPacked(k, v, [&](const std::string& gk, std::string_view) { out.push_back(gk); }));
  }
  return out;
}

}  // namespace vigie::rules::testing
