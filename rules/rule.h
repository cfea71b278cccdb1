#pragma once
// The compiled form of rules (private to rules/ and its tests). Built once by the loader,
// immutable afterwards and shared read-only by every shard.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rules/expr.h"
#include "rules/index.h"
#include "rules/output.h"
#include "rules/ruleset_api.h"
#include "rules/window.h"

namespace vigie::rules {

// A text with {name} references, resolved when the rules load.
struct Template {
  struct Part {
    enum class Kind : uint8_t { kLiteral, kGroup, kLet, kEvent, kRule, kKey };
    Kind kind = Kind::kLiteral;
    std::string text;  // literal text, or the event field name
    int index = 0;     // group / let index
  };
  std::vector<Part> parts;
  bool IsConstant() const {
    return parts.empty() || (parts.size() == 1 && parts[0].kind == Part::Kind::kLiteral);
  }
};

struct ParamSpec {
  std::string name;
  ParamValue constant;  // kind != kString: used as is
  Template text;        // kind == kString: expanded
};

struct ActionSpec {
  OutputType type = OutputType::kCommand;
  Template target, action;  // command
  std::vector<ParamSpec> params;
  std::string severity;     // alert
  Template summary;
  std::vector<std::pair<std::string, Template>> labels;
};

enum class RuleKind : uint8_t { kStateless, kWindowed, kAbsence };

struct Rule {
  // What the engine reads for each event a rule gets comes first, in the first four cache
  // lines (the engine prefetches them with thousands of rules); the rest is read at load, on
  // output and by tools. The order changes nothing else.
  RuleKind kind = RuleKind::kStateless;
  bool reads_clock = false;        // when/clear_when/lets call hour(), sun_altitude()...
  bool keep_last_event = false;    // stateless rule with `for`: the timer's triggering event
  bool where_rest_ok = false;      // see where_rest
  int groupset = 0;                // index of the distinct group_by list (routing)
  int64_t for_ms = 0;
  int64_t absent_for_ms = 0;
  ExprPtr where;                   // may be null
  // `where` less its leading test, for events the index found under one of the test's constants
  // (ResidualAfterLeadingTest): valid when where_rest_ok; null then means nothing is left.
  ExprPtr where_rest;
  ExprPtr when;                    // null only for absence rules
  ExprPtr clear_when;
  WindowSpec window;
  std::vector<ExprPtr> lets;
  std::vector<AggSlot> aggs;
  std::vector<ActionSpec> then, otherwise;

  RuleInfo info;
  std::vector<std::string> on_exact;   // kinds matched exactly
  std::vector<std::string> on_prefix;  // "camera.*" -> "camera."
  std::vector<std::string> group_by;   // never empty (default: device)
  std::vector<std::string> let_names;
  std::vector<AggFunc> agg_funcs;  // parallel to aggs (what windows are built from)
  WindowLayout window_layout;      // from window and agg_funcs (built by RuleSet::Finish); the
                                   // groups' windows point at it
};

class RuleSet {
 public:
  std::vector<Rule> rules;
  size_t file_count = 0;
  std::vector<std::vector<std::string>> groupsets;  // distinct group_by lists
  std::vector<std::vector<uint32_t>> groupset_fields;  // the same, as numbers from `fields`
  // The event field names the rules read (group_by, the index's tests, expressions), numbered
  // by Finish(): what EventFields is bound to.
  FieldNames fields;

  // The rules to evaluate for `ev`: rule indexes, ascending, into *out (cleared first). A
  // superset of the rules whose `on` and `where` match `ev`, and of those whose `where` records an
  // error for it; the caller still evaluates `where` on each (see rules/index.h). Depends on the
  // event's field values, not only its kind: do not cache it per kind. No allocation once *out
  // has the capacity (rules.size() is always enough). Thread-safe (const).
  void Match(const Event& ev, std::vector<uint32_t>* out) const { index.Match(ev, out); }
  // As Match, each entry rule << 1 | 1 when its leading test is known to hold (RuleIndex).
  void MatchTagged(const Event& ev, std::vector<uint32_t>* out) const {
    index.MatchTagged(ev, out);
  }
  // The same, reading fields by number: `ev` loaded and bound to `fields`.
  void MatchTagged(const EventFields& ev, std::vector<uint32_t>* out) const {
    index.MatchTagged(ev, out);
  }
  // Every rule whose `on` matches `kind`, whatever `where` says (ascending, into *out).
  void Match(std::string_view kind, std::vector<uint32_t>* out) const;
  int FindRule(std::string_view name) const;  // -1 if none

  // Built by Finish() from rules.
  struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<uint32_t>, SvHash, std::equal_to<>> by_kind;
  std::vector<std::pair<std::string, uint32_t>> by_prefix;
  std::unordered_map<std::string, int> by_name;
  RuleIndex index;  // by kind and by the leading `field == constant` test of `where`
  void Finish();
};

// FNV-1a 64.
uint64_t Fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull);

// Builds the group key of `rule` for `ev` into *key (values joined by '/'); false if the event
// lacks a group_by field. `values` (optional) receives the values.
bool BuildGroupKey(const std::vector<std::string>& group_by, const Event& ev, std::string* key,
                   std::vector<Value>* values);
// The same, reading the fields by number (`ids` parallel to group_by, from the FieldNames `ev`
// is bound to).
bool BuildGroupKey(const std::vector<std::string>& group_by, const std::vector<uint32_t>& ids,
                   const EventFields& ev, std::string* key, std::vector<Value>* values);

}  // namespace vigie::rules
