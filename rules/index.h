#pragma once
// RuleIndex: which rules an event can match, found without scanning the rules. Built once from a
// compiled rule list (RuleSet::Finish), immutable afterwards and read concurrently by every shard
// and router thread (Match is const and keeps no state between calls).
//
// Rules are filed by the kinds of their `on` (exact kinds, and `camera.*` prefixes), then, when
// their `where` starts with `field == constant` or `field in [constants]` (see FindLeadingTest in
// expr.h for exactly which tests qualify and why only the leading one), by (field, constant).
// Match returns a superset of the rules whose `where` holds for the event: a rule is left out only
// when its leading test is false for the event without recording an error — the event's field
// has a value of one of the constants' types and equals none of them. A missing field or a value
// of another type keeps the rule (its `where` records missing_field / type_mismatch, which the
// engine counts), so evaluating `where` on the candidates gives the same outputs and the same
// counters as evaluating it on every rule of the kind.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rules/const_table.h"
#include "rules/event.h"
#include "rules/fields.h"
#include "rules/value.h"

namespace vigie::rules {

struct Rule;

class RuleIndex {
 public:
  // What a rule is filed under (for tests and tools). `field` empty: not indexed, the rule is a
  // candidate for every event of its kinds.
  struct Key {
    std::string field;
    std::vector<OwnedValue> constants;
  };

  RuleIndex() = default;
  // kind_tags_ points into exact_'s nodes: a move keeps them (the nodes move), a copy would not.
  RuleIndex(const RuleIndex&) = delete;
  RuleIndex& operator=(const RuleIndex&) = delete;
  RuleIndex(RuleIndex&&) noexcept = default;
  RuleIndex& operator=(RuleIndex&&) noexcept = default;

  // `names` (optional): the tested fields are numbered from it, for MatchTagged(EventFields).
  void Build(const std::vector<Rule>& rules, FieldNames* names = nullptr);

  // The rule indexes (ascending, no duplicates) that `ev` may match, into *out (cleared first).
  // No allocation once *out has the capacity (at most the rule count).
  void Match(const Event& ev, std::vector<uint32_t>* out) const;
  // The same rules, each as rule << 1 | known: known is 1 when the event was found under one of
  // the rule's constants, so that its leading test holds with no error and the engine may
  // evaluate only the rest of `where` (ResidualAfterLeadingTest in expr.h). Ascending.
  void MatchTagged(const Event& ev, std::vector<uint32_t>* out) const;
  // The same, reading the tested fields by number (`ev` bound to the FieldNames given to Build).
  void MatchTagged(const EventFields& ev, std::vector<uint32_t>* out) const;

  const Key& key(uint32_t rule) const { return keys_[rule]; }

 private:
  struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using StrMap = std::unordered_map<std::string, V, SvHash, std::equal_to<>>;

  // The rules of one kind bucket filed under one field.
  struct FieldIndex {
    std::string name;
    uint32_t id = kNoField;  // its number in the FieldNames given to Build
    std::vector<uint32_t> all;             // every rule of this field: candidates if it is missing
    std::vector<uint32_t> not_of_type[4];  // by Type: rules with no constant of that type
    ConstTable strings;  // by the text of a string constant
    ConstTable numbers;  // by a number constant (ConstTable::NumberKey)
    std::vector<uint32_t> bools[2];
  };
  struct Bucket {
    std::vector<uint32_t> always;  // rules without a leading test
    std::vector<FieldIndex> fields;
    uint32_t last = UINT32_MAX;  // while building: the last rule added
  };

  static void Add(Bucket* b, uint32_t rule, const Key& key);
  static void Collect(const Bucket& b, const EventFields& ev, std::vector<uint32_t>* out,
                      int* lists);

  std::vector<Key> keys_;
  // One bucket per exact kind of any rule, holding also the prefix rules that match that kind.
  StrMap<Bucket> exact_;
  // The same buckets for a linear scan when there are few kinds (a city has a few dozen): the
  // kind's length and first 8 bytes rule out all but the right one, cheaper than hashing the
  // kind (std::hash was 5 % of the daemon's CPU at full load). Built after exact_ is final.
  struct KindTag {
    uint64_t head;  // the first (up to) 8 bytes, zero-padded
    size_t size;
    const std::string* kind;
    const Bucket* bucket;
  };
  std::vector<KindTag> kind_tags_;  // empty when exact_ has more than kMaxScannedKinds
  static constexpr size_t kMaxScannedKinds = 64;
  static uint64_t Head(std::string_view s);
  const Bucket* FindExact(std::string_view kind) const;
  // One bucket per prefix ("camera."), for kinds that are not in exact_.
  std::vector<std::pair<std::string, Bucket>> prefix_;
};

}  // namespace vigie::rules
