#pragma once
// The expression language of RULES.md ("Expressions"), compiled once when rules load into a tree
// of typed nodes with every name already resolved; evaluated per event with no parsing and no
// allocation in steady state. Pure computation: no I/O, no threads. A compiled Expr is immutable
// and may be shared by every shard; an EvalContext belongs to one thread.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rules/event.h"
#include "rules/fields.h"
#include "rules/timezone.h"
#include "rules/value.h"

namespace vigie::rules {

// A problem found while compiling, placed within the expression text (1-based line and column;
// line 1 column 1 is the first character of `text`). The loader maps it to FILE:LINE:COLUMN.
struct Diag {
  int line = 1;
  int col = 1;
  std::string message;
};

enum class AggFunc : uint8_t {
  kCount, kSum, kAvg, kMin, kMax, kFirst, kLast, kStddev, kCountDistinct
};
const char* AggFuncName(AggFunc f);

class Expr;  // opaque compiled node tree (rules/expr.cc)
struct ExprDeleter {
  void operator()(const Expr* e) const;
};
using ExprPtr = std::unique_ptr<const Expr, ExprDeleter>;

// One aggregate a windowed rule computes, e.g. sum(count). Slots are deduplicated by their
// canonical text, so `count()` used three times is one slot.
struct AggSlot {
  AggFunc func = AggFunc::kCount;
  ExprPtr arg;            // evaluated on each event entering the window; null for count()
  std::string canonical;  // e.g. "sum(count)"
};

// Why an evaluation could not give a value; bits accumulated in EvalContext::errors and counted
// per rule by the engine (vigie_rule_errors_total{reason}).
enum EvalError : uint32_t {
  kErrMissingField = 1u << 0,  // a field (or aggregate/let) had no value
  kErrTypeMismatch = 1u << 1,  // e.g. "a" < 3, -"x", abs(true)
  kErrDivByZero = 1u << 2,     // x / 0, x % 0
  kErrNotBoolean = 1u << 3,    // a condition that is not a boolean (when: 3)
};
// "missing_field", "type_mismatch", "division_by_zero", "not_boolean"
const char* EvalErrorName(EvalError e);

// How names resolve when compiling. Identifiers (and field("...")) resolve in this order:
// let names, then group fields, then event fields (when allowed).
struct CompileEnv {
  std::vector<std::string> lets;          // visible let names; a reference compiles to LetRef(i)
  std::vector<std::string> group_fields;  // visible group_by fields; GroupRef(i)
  bool event_fields = true;               // otherwise an unresolved name is an error
  bool aggregates_allowed = false;        // count()/sum()... allowed (windowed rules)
  std::vector<AggSlot>* aggregates = nullptr;  // where aggregate calls register; required if allowed
};

// Compiles `text`. On failure returns null and appends at least one Diag.
ExprPtr CompileExpr(std::string_view text, const CompileEnv& env, std::vector<Diag>* errors);

// The expression as normalized text: single spaces around binary operators, only the parentheses
// precedence needs, numbers in shortest form, field("...") only for names that are not
// identifiers. Equal texts mean equal expressions (under the same CompileEnv); used for aggregate
// slot deduplication and useful to fingerprint rules across reloads.
std::string ExprCanonical(const Expr& e);

// True if the expression reads a field of the triggering event (not a let / group / aggregate).
bool ReadsEventFields(const Expr& e);

// For the rule index (rules/index.h): the test a `where` condition starts with, when it is
// `field == constant` (either operand order) or `field in [constant, ...]` over an event field,
// possibly after conjuncts that can never record an error (`exists(f)`, `true`, and `not`/`and`/
// `or` of those). Guarantee: for an event whose `field` has a value whose type is in `types` and
// that equals none of `constants`, EvalCondition(where) is false AND records no EvalError, so a
// rule may be skipped for that event without changing any output or counter. Only the first
// test that can record an error qualifies: `and` evaluates left to right and stops at the first
// false, so an error recorded by an earlier conjunct (`speed > 50 and zone == "a"` with speed
// missing) would be lost if the rule were skipped on a later one.
struct LeadingTest {
  std::string field;
  std::vector<Value> constants;  // views into the compiled expression: valid while it lives
  uint8_t types = 0;             // bit (1 << Type) for each type among `constants`
};
// False if `where` does not start with such a test.
bool FindLeadingTest(const Expr& where, LeadingTest* out);
// What is left of `where` to evaluate for an event whose leading test (FindLeadingTest) is
// known to hold, e.g. because the rule index found the event under one of its constants:
// `zone == "a" and lane == "car"` leaves `lane == "car"` (and `(t and a) and b` leaves
// `a and b`); a test alone leaves nothing (*rest null: the condition holds). A true test records
// no error, so evaluating the rest gives the same result and the same errors as the whole.
// False (evaluate `where` whole) when the test is not the first conjunct, i.e. error-free
// conjuncts such as `exists(x)` come before it, or when there is no leading test.
bool ResidualAfterLeadingTest(const Expr& where, ExprPtr* rest);
// True if the expression calls hour()/minute()/weekday()/sun_altitude().
bool ReadsClock(const Expr& e);

// Reusable buffers for string results (lower(), upper()). One per thread; reset per evaluation.
class EvalScratch {
 public:
  std::string* Next();  // a cleared buffer, valid until Reset()
  void Reset() { used_ = 0; }

 private:
  std::vector<std::unique_ptr<std::string>> bufs_;
  size_t used_ = 0;
};

struct EvalContext {
  const Event* event = nullptr;  // triggering event; null when a timer triggered the evaluation
  // The same event's fields by number (rules/fields.h), loaded for `event` and bound to the
  // FieldNames the expressions were numbered from (BindEventFields); null: fields by name.
  const EventFields* fields = nullptr;
  const Value* lets = nullptr;   // let values, indexed as CompileEnv::lets
  const Value* groups = nullptr; // group field values, indexed as CompileEnv::group_fields
  const Value* aggs = nullptr;   // aggregate slot results, indexed as the AggSlot vector
  int64_t now_ms = 0;            // engine time: hour(), minute(), weekday(), sun_altitude()
  const TimeZone* tz = nullptr;  // required if the expression reads the clock
  Location location;
  uint32_t errors = 0;           // EvalError bits, accumulated
  EvalScratch* scratch = nullptr;  // required for lower()/upper()
};

Value Eval(const Expr& e, EvalContext& ctx);
// Numbers the event fields `root` reads from *names (interning new ones), so that evaluations
// with an EvalContext::fields bound to *names read them by number. Only while the RuleSet that
// owns `root` is built (RuleSet::Finish): it changes the expression's code in place.
void BindEventFields(const Expr& root, FieldNames* names);
// A condition: true only for the boolean true. A non-boolean non-missing value sets
// kErrNotBoolean; a missing value gives false.
bool EvalCondition(const Expr& e, EvalContext& ctx);

// The evaluation form of a compiled expression: its nodes in one block, made when it compiles.
// What Eval walks; a caller that evaluates many expressions per event (the engine, for the rules
// an event matched) keeps these pointers in a dense array and prefetches them all first, so that
// their cache misses overlap. Valid while the Expr lives.
class ExprCode;
const ExprCode* CodeOf(const Expr& e);
void PrefetchCode(const ExprCode* c);  // the first three cache lines
size_t CodeBytes(const ExprCode* c);   // the size of its block; 0 for null
Value Eval(const ExprCode& c, EvalContext& ctx);
bool EvalCondition(const ExprCode& c, EvalContext& ctx);

// Durations: "500ms", "10s", "2m", "1h", "1d", and combinations ("1h30m"). A bare number, an empty
// string, a unit twice or out of order ("30m1h") is an error. Returns false and sets *error.
bool ParseDuration(std::string_view text, int64_t* ms, std::string* error);

// Degrees of the sun above the horizon at `loc` at UTC instant `utc_ms` (NOAA algorithm).
double SunAltitude(int64_t utc_ms, const Location& loc);

}  // namespace vigie::rules
