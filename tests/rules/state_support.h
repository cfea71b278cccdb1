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

// A group's own key (format 2, written by TakeChanged up to 37b9d9f); the tests name groups by it.
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
inline bool IsJournalKey(std::string_view k) { return k.size() > 2 && k[2] == '\x04'; }

// A journal's key (format 4): "g/" 0x04 <shard count, 2 bytes> <shard, 2> <checkpoint number,
// 8>, big-endian.
inline std::string JournalKey(int shard_count, int shard, uint64_t no) {
  std::string k(Engine::StatePrefix());
  k.push_back('\x04');
  k.push_back(static_cast<char>(shard_count >> 8));
  k.push_back(static_cast<char>(shard_count));
  k.push_back(static_cast<char>(shard >> 8));
  k.push_back(static_cast<char>(shard));
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(no >> (8 * i)));
  return k;
}

// A pack's checkpoint number (format 4; 0 for format 3).
inline uint64_t PackNumber(std::string_view value) {
  ByteReader rd(value);
  uint8_t format = 0;
  uint64_t no = 0;
  REQUIRE(rd.U8(&format));
  if (format == 4) REQUIRE(rd.Var(&no));
  return no;
}

// Calls fn(own key, format 2 value) for every group a pack holds; false if it is unreadable.
template <class Fn>
bool ForEachPacked(std::string_view key, std::string_view value, Fn fn) {
  REQUIRE(key.size() == 19);
  const std::string own = "g/\x02" + std::string(key.substr(3, 8));
  ByteReader rd(value);
  uint8_t format;
  uint64_t no, n;
  if (!rd.U8(&format) || (format != 3 && format != 4)) return false;
  if (format == 4 && !rd.Var(&no)) return false;
  if (!rd.Var(&n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view gk, gv;
    if (!rd.Str(&gk) || !rd.Str(&gv)) return false;
    fn(own + std::string(gk), gv);
  }
  return rd.done();
}

// One record of a journal: a group (its own key, the key of its pack or "" for none, its
// format 2 value), or a rule gone (`gone_rule`: "g/" 0x02 <rule id>).
struct JournalRecord {
  std::string own_key, pack_key, value, gone_rule;
};

// The records of a journal, in order; false if it is unreadable.
inline bool ReadJournal(std::string_view key, std::string_view value,
                        std::vector<JournalRecord>* out) {
  REQUIRE(key.size() == 15);
  ByteReader rd(value);
  uint8_t format, kind;
  if (!rd.U8(&format) || format != 4) return false;
  while (rd.U8(&kind)) {
    uint64_t id;
    if (!rd.Fixed64(&id)) return false;
    std::string idb;
    for (int i = 7; i >= 0; --i) idb.push_back(static_cast<char>(id >> (8 * i)));
    JournalRecord r;
    if (kind == 2) {
      r.gone_rule = "g/\x02" + idb;
    } else {
      uint64_t b1;
      std::string_view gk, gv;
      if (kind != 1 || !rd.Var(&b1) || !rd.Str(&gk) || !rd.Str(&gv)) return false;
      r.own_key = "g/\x02" + idb + std::string(gk);
      r.value = std::string(gv);
      if (b1 != 0) {
        const auto b = static_cast<uint32_t>(b1 - 1);
        r.pack_key = "g/\x03" + idb + std::string(key.substr(3, 4));
        const char tail[4] = {static_cast<char>(b >> 24), static_cast<char>(b >> 16),
                              static_cast<char>(b >> 8), static_cast<char>(b)};
        r.pack_key.append(tail, 4);
      }
    }
    out->push_back(std::move(r));
  }
  return true;
}

inline uint64_t JournalNumber(std::string_view key) {
  uint64_t no = 0;
  for (size_t i = 7; i < 15; ++i) no = (no << 8) | static_cast<uint8_t>(key[i]);
  return no;
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

// The store group by group, under each group's own key, as rules/README.md "Durable state"
// says to read it: a group's own key (format 2) wins over its copy in a pack; a journal's copy
// wins over both unless the group's pack was written with the same number or a higher one, or
// its rule was reloaded away by a later journal of the same shard.
inline KV Groups(const KV& store) {
  KV out;
  std::map<std::string, uint64_t> pack_no;
  for (const auto& [k, v] : store) {
    if (!IsPackKey(k)) continue;
    pack_no[k] = PackNumber(v);
    CHECK(ForEachPacked(k, v, [&](const std::string& gk, std::string_view gv) {
      CHECK(out.count(gk) == 0);  // a group is in one pack
      out[gk] = std::string(gv);
    }));
  }
  for (const auto& [k, v] : store)
    if (!IsPackKey(k) && !IsJournalKey(k)) out[k] = v;
  // Journals in key order: by shard, then by number.
  std::map<std::string, uint64_t> gone;  // shard (key bytes 3..6) + rule → number
  for (const auto& [k, v] : store) {
    if (!IsJournalKey(k)) continue;
    std::vector<JournalRecord> recs;
    CHECK(ReadJournal(k, v, &recs));
    for (const auto& r : recs)
      if (!r.gone_rule.empty()) gone[k.substr(3, 4) + r.gone_rule] = JournalNumber(k);
  }
  for (const auto& [k, v] : store) {
    if (!IsJournalKey(k)) continue;
    const uint64_t no = JournalNumber(k);
    std::vector<JournalRecord> recs;
    CHECK(ReadJournal(k, v, &recs));
    for (const auto& r : recs) {
      if (r.own_key.empty()) continue;
      auto g = gone.find(k.substr(3, 4) + r.own_key.substr(0, 11));
      if (g != gone.end() && g->second > no) continue;
      auto p = pack_no.find(r.pack_key);
      if (p != pack_no.end() && p->second >= no) continue;
      out[r.own_key] = r.value;
    }
  }
  return out;
}

// The groups a delta puts (each group's own key), in order.
inline std::vector<std::string> GroupsPut(const StateDelta& d) {
  std::vector<std::string> out;
  for (const auto& [k, v] : d.puts) {
    if (IsPackKey(k)) {
      CHECK(ForEachPacked(k, v, [&](const std::string& gk, std::string_view) { out.push_back(gk); }));
    } else if (IsJournalKey(k)) {
      std::vector<JournalRecord> recs;
      CHECK(ReadJournal(k, v, &recs));
      for (const auto& r : recs)
        if (!r.own_key.empty()) out.push_back(r.own_key);
    } else {
      out.emplace_back(k);
    }
  }
  return out;
}

}  // namespace vigie::rules::testing
