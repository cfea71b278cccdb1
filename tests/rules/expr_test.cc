#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "rules/expr.h"

namespace vigie::rules {
namespace {

// What an evaluation should give.
struct Want {
  Type type = Type::kMissing;
  double num = 0;
  std::string str;
  bool b = false;
};
Want M() { return {}; }
Want N(double v) { return {Type::kNumber, v, "", false}; }
Want S(std::string s) { return {Type::kString, 0, std::move(s), false}; }
Want B(bool v) { return {Type::kBool, 0, "", v}; }

std::string Show(const Value& v) {
  switch (v.type) {
    case Type::kMissing: return "<missing>";
    case Type::kNumber: { std::string s; AppendNumber(&s, v.num); return s; }
    case Type::kString: return "\"" + std::string(v.str) + "\"";
    case Type::kBool: return v.b ? "true" : "false";
  }
  return "?";
}

bool Matches(const Value& v, const Want& w) {
  if (v.type != w.type) return false;
  switch (v.type) {
    case Type::kMissing: return true;
    case Type::kNumber: return v.num == Approx(w.num).epsilon(1e-12).margin(1e-12);
    case Type::kString: return v.str == w.str;
    case Type::kBool: return v.b == w.b;
  }
  return false;
}

std::string ErrorBits(uint32_t bits) {
  std::string s;
  for (EvalError e : {kErrMissingField, kErrTypeMismatch, kErrDivByZero, kErrNotBoolean}) {
    if (bits & e) {
      if (!s.empty()) s += "|";
      s += EvalErrorName(e);
    }
  }
  return s.empty() ? "none" : s;
}

constexpr uint32_t kNone = 0;
constexpr uint32_t kMiss = kErrMissingField;
constexpr uint32_t kType = kErrTypeMismatch;
constexpr uint32_t kDiv = kErrDivByZero;
constexpr uint32_t kNotB = kErrNotBoolean;

// The fixture: one event, one let (v = 10), one group field (zone = "north").
struct Fixture {
  Event ev;
  Value lets[1];
  Value groups[1];
  EvalScratch scratch;
  CompileEnv env;

  Fixture() {
    ev.kind = "traffic";
    ev.ts_ms = 1000;
    ev.Set("status", Value::String("ok"));
    ev.Set("count", Value::Number(3));
    ev.Set("speed", Value::Number(42.5));
    ev.Set("lane", Value::String("bus"));
    ev.Set("flag", Value::Bool(true));
    ev.Set("off", Value::Bool(false));
    ev.Set("name", Value::String("Hello World"));
    ev.Set("gps.lat", Value::Number(47.3));
    ev.Set("odd-name", Value::Number(7));
    ev.Set("zero", Value::Number(0));
    ev.Set("neg", Value::Number(-2.5));
    ev.Set("snum", Value::String("3"));
    lets[0] = Value::Number(10);
    groups[0] = Value::String("north");
    env.lets = {"v"};
    env.group_fields = {"zone"};
  }

  EvalContext Ctx() {
    EvalContext ctx;
    ctx.event = &ev;
    ctx.lets = lets;
    ctx.groups = groups;
    ctx.scratch = &scratch;
    return ctx;
  }
};

ExprPtr MustCompile(std::string_view text, const CompileEnv& env) {
  std::vector<Diag> diags;
  ExprPtr e = CompileExpr(text, env, &diags);
  INFO(text);
  for (const Diag& d : diags) UNSCOPED_INFO(d.line << ":" << d.col << ": " << d.message);
  REQUIRE(e);
  REQUIRE(diags.empty());
  return e;
}

struct Case {
  const char* text;
  Want want;
  uint32_t errors;
};

void RunTable(const std::vector<Case>& cases) {
  Fixture f;
  for (const Case& c : cases) {
    INFO("expression: " << c.text);
    ExprPtr e = MustCompile(c.text, f.env);
    EvalContext ctx = f.Ctx();
    f.scratch.Reset();
    const Value v = Eval(*e, ctx);
    INFO("got " << Show(v) << " errors " << ErrorBits(ctx.errors));
    CHECK(Matches(v, c.want));
    CHECK(ErrorBits(ctx.errors) == ErrorBits(c.errors));
  }
}

TEST_CASE("literals", "[expr]") {
  RunTable({
      {"3", N(3), kNone},
      {"2.5", N(2.5), kNone},
      {"-1e3", N(-1000), kNone},
      {".5", N(0.5), kNone},
      {"1.5E-3", N(0.0015), kNone},
      {"1e+2", N(100), kNone},
      {"\"a\\\"b\"", S("a\"b"), kNone},
      {"\"back\\\\slash\"", S("back\\slash"), kNone},
      {"\"l1\\nl2\\tx\"", S("l1\nl2\tx"), kNone},
      {"\"\\u00e9\"", S("\xc3\xa9"), kNone},
      {"\"\\ud83d\\ude00\"", S("\xf0\x9f\x98\x80"), kNone},
      {"\"\"", S(""), kNone},
      {"true", B(true), kNone},
      {"false", B(false), kNone},
  });
}

TEST_CASE("precedence and associativity", "[expr]") {
  RunTable({
      {"1 + 2 * 3", N(7), kNone},
      {"(1 + 2) * 3", N(9), kNone},
      {"-2 * 3", N(-6), kNone},
      {"- count * 2", N(-6), kNone},
      {"--count", N(3), kNone},
      {"10 - 4 - 3", N(3), kNone},
      {"12 / 3 / 2", N(2), kNone},
      {"2 * 3 % 4", N(2), kNone},
      {"7 % 4", N(3), kNone},
      {"-7 % 4", N(-3), kNone},
      {"7.5 % 2", N(1.5), kNone},
      {"2 + 3 == 5", B(true), kNone},
      {"1 + 1 < 3", B(true), kNone},
      {"1 < 2 == true", B(true), kNone},
      {"1 == 1 and 2 == 3 or true", B(true), kNone},
      {"true or false and false", B(true), kNone},
      {"false and (false or true)", B(false), kNone},
      {"not status == \"fault\"", B(true), kNone},
      {"not false and false", B(false), kNone},
      {"not (false and false)", B(true), kNone},
      {"not not true", B(true), kNone},
      {"count == 3 in [true]", B(true), kNone},
      {"count + 1 in [4, 5]", B(true), kNone},
      {"not count in [3]", B(false), kNone},
      {"(((count)))", N(3), kNone},
  });
}

TEST_CASE("in, not in", "[expr]") {
  RunTable({
      {"count in [1, 2, 3]", B(true), kNone},
      {"count in [1, 2]", B(false), kNone},
      {"status in [\"fault\", \"error\"]", B(false), kNone},
      {"status in [\"fault\", \"ok\"]", B(true), kNone},
      {"status not in [\"fault\"]", B(true), kNone},
      {"status not in [\"ok\"]", B(false), kNone},
      {"status in [\"o\" , lower(\"OK\")]", B(true), kNone},
      {"count in [1 + 2]", B(true), kNone},
      {"count in [\n  1,\n  3,\n]", B(true), kNone},  // trailing comma, multi-line
      {"count in [\"3\"]", B(false), kType},
      {"count in [\"3\", 3]", B(true), kNone},
      {"nope in [1]", B(false), kMiss},
      {"nope not in [1]", B(true), kMiss},
  });
}

TEST_CASE("field references", "[expr]") {
  RunTable({
      {"status", S("ok"), kNone},
      {"gps.lat", N(47.3), kNone},
      {"gps.lat > 47", B(true), kNone},
      {"field(\"odd-name\")", N(7), kNone},
      {"field(\"odd-name\") * 2", N(14), kNone},
      {"field(\"gps.lat\")", N(47.3), kNone},
      {"field(\"v\")", N(10), kNone},  // same resolution as identifiers
      {"kind", S("traffic"), kNone},
      {"ts", N(1000), kNone},
      {"v", N(10), kNone},
      {"zone", S("north"), kNone},
      {"flag and not off", B(true), kNone},
  });
}

TEST_CASE("missing fields make comparisons false and set missing_field", "[expr]") {
  RunTable({
      {"nope", M(), kMiss},
      {"gps.lon", M(), kMiss},
      {"nope == 1", B(false), kMiss},
      {"nope != 1", B(false), kMiss},
      {"nope < 1", B(false), kMiss},
      {"nope >= 1", B(false), kMiss},
      {"nope + 1", M(), kMiss},
      {"nope + 1 > 0", B(false), kMiss},
      {"-nope", M(), kMiss},
      {"not nope", M(), kMiss},
      {"not nope == 1", B(true), kMiss},
      {"nope and true", B(false), kMiss},
      {"true and nope", B(false), kMiss},
      {"nope or true", B(true), kMiss},
      {"abs(nope)", M(), kMiss},
      {"starts_with(nope, \"a\")", B(false), kMiss},
      {"lower(nope)", M(), kMiss},
      {"nope == nope2", B(false), kMiss},
      {"exists(nope)", B(false), kNone},
      {"exists(status)", B(true), kNone},
      {"exists(field(\"odd-name\"))", B(true), kNone},
      {"exists(v)", B(true), kNone},
      {"exists(zone)", B(true), kNone},
      {"not exists(nope)", B(true), kNone},
  });
}

TEST_CASE("mismatched types give false and set type_mismatch", "[expr]") {
  RunTable({
      {"status == 3", B(false), kType},
      {"status != 3", B(false), kType},
      {"status < 3", B(false), kType},
      {"snum == 3", B(false), kType},
      {"flag == 1", B(false), kType},
      {"flag < true", B(false), kType},
      {"status + 1", M(), kType},
      {"status + 1 == 2", B(false), kType},
      {"-status", M(), kType},
      {"abs(status)", M(), kType},
      {"round(flag)", M(), kType},
      {"contains(count, \"3\")", B(false), kType},
      {"starts_with(name, 1)", B(false), kType},
      {"upper(3)", M(), kType},
      {"flag == true", B(true), kNone},
      {"status != \"fault\"", B(true), kNone},
      // Booleans expected: non-booleans count as false and set not_boolean.
      {"3 and true", B(false), kNotB},
      {"not 3", M(), kNotB},
      {"true or 3", B(true), kNone},  // short-circuit: 3 is not evaluated
      {"false or 3", B(false), kNotB},
      {"false and nope", B(false), kNone},  // short-circuit: nope is not read
  });
}

TEST_CASE("division by zero has no value", "[expr]") {
  RunTable({
      {"count / 0", M(), kDiv},
      {"count % zero", M(), kDiv},
      {"count / 0 > 1", B(false), kDiv},
      {"count / 0 == count / 0", B(false), kDiv},
      {"zero / 2", N(0), kNone},
      {"count / 2", N(1.5), kNone},
      {"count / (1 - 1) + nope", M(), kDiv | kMiss},
  });
}

TEST_CASE("number comparisons", "[expr]") {
  RunTable({
      {"count < 3", B(false), kNone},
      {"count < 4", B(true), kNone},
      {"count <= 3", B(true), kNone},
      {"count <= 2.9", B(false), kNone},
      {"count > 3", B(false), kNone},
      {"count > 2", B(true), kNone},
      {"count >= 3", B(true), kNone},
      {"count >= 3.1", B(false), kNone},
      {"count == 3", B(true), kNone},
      {"count != 3", B(false), kNone},
      {"count == 3.0", B(true), kNone},
      {"neg < -2", B(true), kNone},
      {"-0 == 0", B(true), kNone},
  });
}

TEST_CASE("string comparisons are bytewise", "[expr]") {
  RunTable({
      {"\"abc\" < \"abd\"", B(true), kNone},
      {"\"b\" > \"abc\"", B(true), kNone},
      {"status >= \"ok\"", B(true), kNone},
      {"status <= \"ok\"", B(true), kNone},
      {"status < \"ok\"", B(false), kNone},
      {"status > \"ok\"", B(false), kNone},
      {"\"ok\" < \"o\"", B(false), kNone},
      {"\"Z\" < \"a\"", B(true), kNone},
      {"\"ab\" < \"abc\"", B(true), kNone},
      {"lane == \"bus\"", B(true), kNone},
  });
}

TEST_CASE("scalar functions", "[expr]") {
  RunTable({
      {"abs(neg)", N(2.5), kNone},
      {"abs(-3)", N(3), kNone},
      {"round(2.5)", N(3), kNone},
      {"round(-2.5)", N(-3), kNone},
      {"round(2.4)", N(2), kNone},
      {"round(speed)", N(43), kNone},
      {"floor(-2.5)", N(-3), kNone},
      {"floor(2.9)", N(2), kNone},
      {"ceil(-2.5)", N(-2), kNone},
      {"ceil(2.1)", N(3), kNone},
      {"starts_with(name, \"Hello\")", B(true), kNone},
      {"starts_with(name, \"World\")", B(false), kNone},
      {"ends_with(name, \"World\")", B(true), kNone},
      {"ends_with(name, \"world\")", B(false), kNone},
      {"contains(name, \"o W\")", B(true), kNone},
      {"contains(name, \"xyz\")", B(false), kNone},
      {"contains(name, \"\")", B(true), kNone},
      {"lower(name)", S("hello world"), kNone},
      {"upper(name)", S("HELLO WORLD"), kNone},
      {"lower(name) == \"hello world\"", B(true), kNone},
      {"upper(lower(name)) == upper(name)", B(true), kNone},
      {"upper(\"\xc3\xa9-a\")", S("\xc3\xa9-A"), kNone},  // ASCII only
      {"lower(status)", S("ok"), kNone},
  });
}

TEST_CASE("EvalCondition: only boolean true holds", "[expr]") {
  Fixture f;
  struct Row {
    const char* text;
    bool want;
    uint32_t errors;
  };
  const Row rows[] = {
      {"count == 3", true, kNone},
      {"count == 4", false, kNone},
      {"3", false, kNotB},
      {"status", false, kNotB},
      {"nope", false, kMiss},
      {"not nope", false, kMiss},
      {"flag", true, kNone},
  };
  for (const Row& r : rows) {
    INFO(r.text);
    ExprPtr e = MustCompile(r.text, f.env);
    EvalContext ctx = f.Ctx();
    CHECK(EvalCondition(*e, ctx) == r.want);
    CHECK(ErrorBits(ctx.errors) == ErrorBits(r.errors));
  }
}

TEST_CASE("errors accumulate across evaluations until the caller clears them", "[expr]") {
  Fixture f;
  ExprPtr a = MustCompile("nope == 1", f.env);
  ExprPtr b = MustCompile("status < 1", f.env);
  EvalContext ctx = f.Ctx();
  Eval(*a, ctx);
  Eval(*b, ctx);
  CHECK(ctx.errors == (kMiss | kType));
}

TEST_CASE("names resolve to let, then group field, then event field", "[expr]") {
  Event ev;
  ev.Set("x", Value::String("event"));
  ev.Set("y", Value::String("event"));
  ev.Set("z", Value::String("event"));
  Value lets[] = {Value::String("let")};
  Value groups[] = {Value::String("group"), Value::String("group")};
  CompileEnv env;
  env.lets = {"x"};
  env.group_fields = {"x", "y"};
  EvalContext ctx;
  ctx.event = &ev;
  ctx.lets = lets;
  ctx.groups = groups;
  auto eval = [&](const char* text) {
    ExprPtr e = MustCompile(text, env);
    return std::string(Eval(*e, ctx).str);
  };
  CHECK(eval("x") == "let");
  CHECK(eval("y") == "group");
  CHECK(eval("z") == "event");
  CHECK(eval("field(\"x\")") == "let");

  ExprPtr x = MustCompile("x == \"let\"", env);
  ExprPtr z = MustCompile("z == \"event\"", env);
  CHECK_FALSE(ReadsEventFields(*x));
  CHECK(ReadsEventFields(*z));
}

TEST_CASE("without event fields, an unknown name is a compile error listing what is allowed",
          "[expr]") {
  CompileEnv env;
  env.lets = {"vehicles"};
  env.group_fields = {"zone"};
  env.event_fields = false;
  std::vector<Diag> diags;
  CHECK(CompileExpr("vehicles == 0 and zone == \"n\"", env, &diags));
  CHECK(diags.empty());
  CHECK_FALSE(CompileExpr("vehicles == 0 and speed > 3", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].col == 19);
  CHECK_THAT(diags[0].message, Catch::StartsWith("unknown name 'speed' (allowed here: let "
                                                 "names vehicles; group_by fields zone"));
  diags.clear();
  CHECK_FALSE(CompileExpr("exists(speed)", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK_THAT(diags[0].message, Catch::StartsWith("unknown name 'speed'"));

  CompileEnv bare;
  bare.event_fields = false;
  diags.clear();
  CHECK_FALSE(CompileExpr("a", bare, &diags));
  REQUIRE(diags.size() == 1);
  CHECK_THAT(diags[0].message, Catch::Contains("no let names or group_by fields"));
}

TEST_CASE("evaluation without a triggering event", "[expr]") {
  Fixture f;
  ExprPtr e = MustCompile("exists(status)", f.env);
  ExprPtr g = MustCompile("status == \"ok\"", f.env);
  ExprPtr l = MustCompile("v + 1", f.env);
  EvalContext ctx = f.Ctx();
  ctx.event = nullptr;
  CHECK(Eval(*e, ctx).b == false);
  CHECK(ctx.errors == 0);
  CHECK_FALSE(EvalCondition(*g, ctx));
  CHECK(ctx.errors == kMiss);
  CHECK(Eval(*l, ctx).num == 11);
}

TEST_CASE("aggregates are refused outside windowed rules", "[expr][agg]") {
  Fixture f;
  std::vector<Diag> diags;
  CHECK_FALSE(CompileExpr("v > 1 and count() == 0", f.env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].line == 1);
  CHECK(diags[0].col == 11);
  CHECK(diags[0].message ==
        "aggregate count() is only allowed in windowed rules (in let and when)");

  // Allowed but without a registry: still refused, never a crash.
  CompileEnv env = f.env;
  env.aggregates_allowed = true;
  diags.clear();
  CHECK_FALSE(CompileExpr("sum(count)", env, &diags));
  CHECK(diags.size() == 1);
}

TEST_CASE("aggregates register deduplicated slots and read ctx.aggs", "[expr][agg]") {
  std::vector<AggSlot> slots;
  CompileEnv env;
  env.lets = {"count"};  // an aggregate's argument never sees lets or group fields
  env.group_fields = {"zone"};
  env.aggregates_allowed = true;
  env.aggregates = &slots;

  ExprPtr a = MustCompile("sum(count) > 3 and count() == 2 or sum( count ) < 1 or count()>=1",
                          env);
  REQUIRE(slots.size() == 2);
  CHECK(slots[0].canonical == "sum(count)");
  CHECK(slots[0].func == AggFunc::kSum);
  REQUIRE(slots[0].arg);
  CHECK(slots[1].canonical == "count()");
  CHECK(slots[1].func == AggFunc::kCount);
  CHECK_FALSE(slots[1].arg);
  CHECK_FALSE(ReadsEventFields(*a));

  ExprPtr b = MustCompile("avg(speed * 2) + sum(count) + count_distinct(zone)", env);
  REQUIRE(slots.size() == 4);
  CHECK(slots[2].canonical == "avg(speed * 2)");
  CHECK(slots[2].func == AggFunc::kAvg);
  CHECK(slots[3].canonical == "count_distinct(zone)");

  // Every aggregate kind compiles.
  ExprPtr c = MustCompile(
      "min(speed) + max(speed) + first(speed) + last(speed) + stddev(speed) == 0", env);
  REQUIRE(slots.size() == 9);
  CHECK(slots[4].func == AggFunc::kMin);
  CHECK(slots[5].func == AggFunc::kMax);
  CHECK(slots[6].func == AggFunc::kFirst);
  CHECK(slots[7].func == AggFunc::kLast);
  CHECK(slots[8].func == AggFunc::kStddev);
  CHECK(std::string(AggFuncName(AggFunc::kCountDistinct)) == "count_distinct");

  // Arguments read the entering event's fields, not lets or group fields.
  Event ev;
  ev.Set("count", Value::Number(5));
  ev.Set("zone", Value::String("event-zone"));
  ev.Set("speed", Value::Number(4));
  EvalContext actx;
  actx.event = &ev;
  CHECK(ReadsEventFields(*slots[0].arg));
  CHECK(Eval(*slots[0].arg, actx).num == 5);
  CHECK(Eval(*slots[2].arg, actx).num == 8);
  CHECK(Eval(*slots[3].arg, actx).str == "event-zone");

  // The expression reads slot results.
  Value aggs[9] = {Value::Number(4), Value::Number(2), Value::Missing(), Value::Number(1)};
  EvalContext ctx;
  ctx.aggs = aggs;
  CHECK(EvalCondition(*a, ctx));
  CHECK(ctx.errors == 0);
  CHECK(Eval(*b, ctx).missing());  // avg over an empty window has no value
  CHECK(ctx.errors == kMiss);
  aggs[2] = Value::Number(1.5);
  CHECK(Eval(*b, ctx).num == 1.5 + 4 + 1);

  // count(x): events where x has a value, as a sum of 0/1 (no missing_field counted).
  ExprPtr d = MustCompile("count(speed) > 0", env);
  REQUIRE(slots.size() == 10);
  CHECK(slots[9].canonical == "count(speed)");
  CHECK(slots[9].func == AggFunc::kSum);
  actx.errors = 0;
  CHECK(Eval(*slots[9].arg, actx).num == 1);
  Event empty;
  actx.event = &empty;
  CHECK(Eval(*slots[9].arg, actx).num == 0);
  CHECK(actx.errors == 0);
}

TEST_CASE("aggregate errors: nesting, arity, failed compiles register nothing", "[expr][agg]") {
  std::vector<AggSlot> slots;
  CompileEnv env;
  env.aggregates_allowed = true;
  env.aggregates = &slots;
  std::vector<Diag> diags;

  CHECK_FALSE(CompileExpr("sum(avg(x))", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].col == 5);
  CHECK(diags[0].message == "aggregate avg() cannot be used inside sum()");

  diags.clear();
  CHECK_FALSE(CompileExpr("sum()", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "sum() takes 1 argument, got 0");

  diags.clear();
  CHECK_FALSE(CompileExpr("count(a, b)", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK_THAT(diags[0].message, Catch::StartsWith("count() takes no arguments"));

  diags.clear();
  CHECK_FALSE(CompileExpr("sum(a) + avg(b) > foo()", env, &diags));
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].message == "unknown function 'foo'");
  CHECK(slots.empty());

  // A slot registered by an earlier expression is reused by index.
  ExprPtr first = MustCompile("max(a) > 1", env);
  ExprPtr second = MustCompile("sum(a) > max(a)", env);
  REQUIRE(slots.size() == 2);
  Value aggs[] = {Value::Number(3), Value::Number(5)};  // max(a), sum(a)
  EvalContext ctx;
  ctx.aggs = aggs;
  CHECK(EvalCondition(*second, ctx));
}

struct ErrCase {
  const char* text;
  int line;
  int col;
  const char* message;  // exact, or a prefix when it ends with "..."
};

void CheckFirstError(const ErrCase& c, const CompileEnv& env) {
  INFO("expression: " << c.text);
  std::vector<Diag> diags;
  ExprPtr e = CompileExpr(c.text, env, &diags);
  CHECK_FALSE(e);
  REQUIRE_FALSE(diags.empty());
  CHECK(diags[0].line == c.line);
  CHECK(diags[0].col == c.col);
  std::string want = c.message;
  if (want.size() > 3 && want.compare(want.size() - 3, 3, "...") == 0) {
    CHECK_THAT(diags[0].message, Catch::StartsWith(want.substr(0, want.size() - 3)));
  } else {
    CHECK(diags[0].message == want);
  }
}

TEST_CASE("compile errors carry line, column and a clear message", "[expr][errors]") {
  Fixture f;
  const ErrCase cases[] = {
      {"", 1, 1, "empty expression"},
      {"   ", 1, 4, "empty expression"},
      {"a ==", 1, 5, "unexpected end of expression (expected a value)"},
      {"status == \"x", 1, 11, "unterminated string..."},
      {"status == \"x\ny\"", 1, 11, "unterminated string..."},
      {"abs(1, 2)", 1, 1, "abs() takes 1 argument, got 2"},
      {"hour(1)", 1, 1, "hour() takes no arguments, got 1"},
      {"starts_with(a)", 1, 1, "starts_with() takes 2 arguments, got 1"},
      {"foo(1)", 1, 1, "unknown function 'foo'"},
      {"Abs(1)", 1, 1,
       "unknown function 'Abs' (names are case-sensitive: did you mean 'abs'?)"},
      {"a.b(1)", 1, 1, "unknown function 'a.b'"},
      {"a == 1 and\n  foo(2)", 2, 3, "unknown function 'foo'"},
      {"a == 1 and\r\n\tfoo(2)", 2, 2, "unknown function 'foo'"},
      {"a < b < c", 1, 7, "comparisons cannot be chained: write 'a < b and b < c'"},
      {"a == b != c", 1, 8, "comparisons cannot be chained: write 'a == b and b == c'"},
      {"a in [1] in [true]", 1, 10, "'in' cannot be chained..."},
      {"a in 1", 1, 6, "expected '[' after 'in'..."},
      {"a in [1, 2", 1, 11, "expected ',' or ']' in list, found end of expression"},
      {"a in []", 1, 6, "empty list after 'in'"},
      {"a = 1", 1, 3, "unexpected '=': use '==' to compare"},
      {"a && b", 1, 3, "unexpected '&': use 'and'"},
      {"a || b", 1, 3, "unexpected '|': use 'or'"},
      {"!a", 1, 1, "unexpected '!': use 'not' to negate"},
      {"a == 'x'", 1, 6, "unexpected \"'\": strings are written in double quotes"},
      {"a # b", 1, 3, "unexpected character '#'"},
      {"(a == 1", 1, 1, "unclosed '('"},
      {"(a == 1 b", 1, 9, "expected ')', found 'b'"},
      {"()", 1, 2, "empty parentheses"},
      {"abs(1", 1, 6, "expected ')' after arguments, found end of expression"},
      {"abs(1 2)", 1, 7, "expected ')' after arguments, found '2'"},
      {"a b", 1, 3, "unexpected 'b' (missing operator?)"},
      {"a == 1)", 1, 7, "unexpected ')'"},
      {"a == ,", 1, 6, "unexpected ',' (expected a value)"},
      {"a and or b", 1, 7, "unexpected 'or'..."},
      {"3abc", 1, 1, "invalid number '3abc'"},
      {"5.", 1, 1, "invalid number '5.': digits must follow '.'"},
      {"1e", 1, 1, "invalid number '1e'"},
      {"1e999", 1, 1, "number '1e999' is out of range"},
      {"\"a\\qb\"", 1, 3, "invalid escape '\\q' in string..."},
      {"\"\\u12\"", 1, 2, "invalid escape: \\u needs 4 hex digits"},
      {"\"\\ud800\"", 1, 2, "invalid escape: unpaired UTF-16 surrogate"},
      {"+a", 1, 1, "unexpected '+' (no unary plus)"},
      {"a == not b", 1, 6, "'not' must be parenthesized here..."},
      {"field(x)", 1, 7, "field() takes one string literal, e.g. field(\"odd-name\")"},
      {"field()", 1, 1, "field() takes one string literal, e.g. field(\"odd-name\")"},
      {"field(\"\")", 1, 7, "field(\"\"): empty field name"},
      {"exists(1)", 1, 8, "exists() takes a field name..."},
      {"exists(a + 1)", 1, 8, "exists() takes a field name..."},
      {"\"\xc3\xa9\" == x y", 1, 10, "unexpected 'y' (missing operator?)"},
  };
  for (const ErrCase& c : cases) CheckFirstError(c, f.env);
}

TEST_CASE("compile reports every name error, not only the first", "[expr][errors]") {
  Fixture f;
  std::vector<Diag> diags;
  CHECK_FALSE(CompileExpr("foo(1) + bar(2) > 0 and\n  abs() == 1", f.env, &diags));
  REQUIRE(diags.size() == 3);
  CHECK(diags[0].message == "unknown function 'foo'");
  CHECK(diags[1].message == "unknown function 'bar'");
  CHECK(diags[1].col == 10);
  CHECK(diags[2].message == "abs() takes 1 argument, got 0");
  CHECK(diags[2].line == 2);
  CHECK(diags[2].col == 3);

  // Diagnostics are appended: earlier ones are kept.
  CHECK_FALSE(CompileExpr("baz()", f.env, &diags));
  CHECK(diags.size() == 4);
}

TEST_CASE("deeply nested input is refused, not a stack overflow", "[expr][errors]") {
  Fixture f;
  std::string parens = std::string(5000, '(') + "1" + std::string(5000, ')');
  std::string sum = "1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  nots += "true";
  std::string negs = std::string(5000, '-') + "1";
  for (const std::string& text : {parens, sum, nots, negs}) {
    std::vector<Diag> diags;
    CHECK_FALSE(CompileExpr(text, f.env, &diags));
    REQUIRE(diags.size() == 1);
    CHECK_THAT(diags[0].message, Catch::StartsWith("expression is too deeply nested"));
  }
  // Moderate nesting is fine.
  std::string ok = std::string(50, '(') + "1" + std::string(50, ')');
  MustCompile(ok, f.env);
}

TEST_CASE("canonical text normalizes spacing, parentheses and names", "[expr]") {
  Fixture f;
  struct Row {
    const char* text;
    const char* canonical;
  };
  const Row rows[] = {
      {"a==1 and(b==2 or c)", "a == 1 and (b == 2 or c)"},
      {"(a == 1 and b == 2) or c", "a == 1 and b == 2 or c"},
      {"-(1)", "-1"},
      {"- x", "-x"},
      {"a - (b - c)", "a - (b - c)"},
      {"(a - b) - c", "a - b - c"},
      {"(a * b) + c * -2", "a * b + c * -2"},
      {"(a + b) * c", "(a + b) * c"},
      {"not (a == 1)", "not a == 1"},
      {"(not a) == b", "(not a) == b"},
      {"x not in [1,2]", "not x in [1, 2]"},
      {"(a < b) == c", "a < b == c"},
      {"a < (b == c)", "a < (b == c)"},
      {"field(\"odd-name\") + field(\"plain\")", "field(\"odd-name\") + plain"},
      {"field(\"in\")", "field(\"in\")"},
      {"\"q\\\"\\n\"", "\"q\\\"\\n\""},
      {"1.50 + 1e3", "1.5 + 1000"},
      {"abs( x )+hour()", "abs(x) + hour()"},
      {"starts_with(a,\"b\")", "starts_with(a, \"b\")"},
  };
  for (const Row& r : rows) {
    INFO(r.text);
    ExprPtr e = MustCompile(r.text, f.env);
    const std::string canon = ExprCanonical(*e);
    CHECK(canon == r.canonical);
    ExprPtr again = MustCompile(canon, f.env);
    CHECK(ExprCanonical(*again) == canon);
  }
}

TEST_CASE("time functions read now_ms through the time zone", "[expr][time]") {
  Fixture f;
  ExprPtr h = MustCompile("hour()", f.env);
  ExprPtr m = MustCompile("minute()", f.env);
  ExprPtr w = MustCompile("weekday()", f.env);
  ExprPtr c = MustCompile("hour() >= 12 and weekday() == 7", f.env);
  FixedOffsetZone paris_winter(3600), paris_summer(7200);
  EvalContext ctx = f.Ctx();

  ctx.now_ms = 1782042120000;  // Sunday 2026-06-21 11:42 UTC
  ctx.tz = &paris_winter;
  CHECK(Eval(*h, ctx).num == 12);
  CHECK(Eval(*m, ctx).num == 42);
  CHECK(Eval(*w, ctx).num == 7);
  ctx.tz = &paris_summer;
  CHECK(Eval(*h, ctx).num == 13);
  CHECK(EvalCondition(*c, ctx));

  ctx.now_ms = 1782084600000;  // 2026-06-21 23:30 UTC: Monday 00:30 / 01:30 locally
  ctx.tz = &paris_winter;
  CHECK(Eval(*h, ctx).num == 0);
  CHECK(Eval(*m, ctx).num == 30);
  CHECK(Eval(*w, ctx).num == 1);
  ctx.tz = &paris_summer;
  CHECK(Eval(*h, ctx).num == 1);
  CHECK(Eval(*w, ctx).num == 1);
  CHECK_FALSE(EvalCondition(*c, ctx));
  CHECK(ctx.errors == 0);

  ctx.tz = nullptr;  // documented fallback: UTC
  CHECK(Eval(*h, ctx).num == 23);
  CHECK(Eval(*w, ctx).num == 7);

  CHECK(ReadsClock(*h));
  CHECK(ReadsClock(*c));
  CHECK_FALSE(ReadsEventFields(*c));
  CHECK_FALSE(ReadsClock(*MustCompile("count > 1", f.env)));
}

TEST_CASE("sun_altitude() uses now_ms and the configured location", "[expr][time]") {
  Fixture f;
  ExprPtr e = MustCompile("sun_altitude()", f.env);
  ExprPtr night = MustCompile("sun_altitude() < -6", f.env);
  CHECK(ReadsClock(*e));
  EvalContext ctx = f.Ctx();
  ctx.now_ms = 1782042120000;  // solstice noon at Dijon
  CHECK(Eval(*e, ctx).num == Approx(66.11).margin(0.05));
  CHECK(Eval(*e, ctx).num == SunAltitude(ctx.now_ms, ctx.location));
  CHECK_FALSE(EvalCondition(*night, ctx));
  ctx.location = {-47.322, 5.041};  // same longitude, southern hemisphere: winter
  CHECK(Eval(*e, ctx).num == Approx(90 - 47.322 - 23.44).margin(0.1));
  ctx.now_ms += 12 * 3600000LL;  // local midnight
  CHECK(EvalCondition(*night, ctx));
}

TEST_CASE("flags: ReadsEventFields", "[expr]") {
  Fixture f;
  CHECK(ReadsEventFields(*MustCompile("count > 1", f.env)));
  CHECK(ReadsEventFields(*MustCompile("exists(status)", f.env)));
  CHECK(ReadsEventFields(*MustCompile("v > 1 or abs(count) > 0", f.env)));
  CHECK_FALSE(ReadsEventFields(*MustCompile("v > 1 and zone == \"n\"", f.env)));
  CHECK_FALSE(ReadsEventFields(*MustCompile("hour() > 1", f.env)));
  CHECK_FALSE(ReadsEventFields(*MustCompile("1 + 2", f.env)));
}

TEST_CASE("lower()/upper() reuse scratch buffers", "[expr]") {
  Fixture f;
  ExprPtr e = MustCompile("lower(name)", f.env);
  ExprPtr two = MustCompile("lower(name) + upper(name)", f.env);  // type mismatch, two buffers
  EvalContext ctx = f.Ctx();
  f.scratch.Reset();
  const Value a = Eval(*e, ctx);
  REQUIRE(a.str == "hello world");
  const char* first_buf = a.str.data();
  f.scratch.Reset();
  const Value b = Eval(*e, ctx);
  CHECK(b.str == "hello world");
  CHECK(b.str.data() == first_buf);  // the same buffer again: no allocation in steady state

  // Without a change to make, the input is returned as is (no buffer used).
  ExprPtr same = MustCompile("lower(status)", f.env);
  EvalContext no_scratch = f.Ctx();
  no_scratch.scratch = nullptr;
  CHECK(Eval(*same, no_scratch).str.data() == f.ev.Get("status").str.data());
  // Needing a buffer without scratch gives no value (documented) rather than crashing.
  CHECK(Eval(*e, no_scratch).missing());

  EvalScratch s;
  std::string* p1 = s.Next();
  p1->assign("abc");
  std::string* p2 = s.Next();
  CHECK(p1 != p2);
  s.Reset();
  CHECK(s.Next() == p1);
  CHECK(p1->empty());
  (void)two;
}

TEST_CASE("names of errors and aggregate functions", "[expr]") {
  CHECK(std::string(EvalErrorName(kErrMissingField)) == "missing_field");
  CHECK(std::string(EvalErrorName(kErrTypeMismatch)) == "type_mismatch");
  CHECK(std::string(EvalErrorName(kErrDivByZero)) == "division_by_zero");
  CHECK(std::string(EvalErrorName(kErrNotBoolean)) == "not_boolean");
  CHECK(std::string(AggFuncName(AggFunc::kCount)) == "count");
  CHECK(std::string(AggFuncName(AggFunc::kStddev)) == "stddev");
}

TEST_CASE("a compiled expression is reusable across events", "[expr]") {
  Fixture f;
  ExprPtr e = MustCompile("status in [\"fault\", \"error\"] and speed > 10", f.env);
  EvalContext ctx = f.Ctx();
  CHECK_FALSE(EvalCondition(*e, ctx));
  f.ev.Set("status", Value::String("fault"));
  CHECK(EvalCondition(*e, ctx));
  f.ev.Set("speed", Value::Number(5));
  CHECK_FALSE(EvalCondition(*e, ctx));
  CHECK(ctx.errors == 0);
}

TEST_CASE("the code form: one block, evaluated alike through CodeOf", "[expr]") {
  Fixture f;
  // Kids of every arity and subtrees of different depths, so that a node's kids and its kids'
  // subtrees interleave in the block.
  const char* text =
      "(abs(neg) + count * 2 > 7 and lane in [\"car\", \"bus\", \"tram\"]) or "
      "not (starts_with(name, \"Hell\") and -speed < v)";
  ExprPtr e = MustCompile(text, f.env);
  const ExprCode* code = CodeOf(*e);
  REQUIRE(code != nullptr);
  // 24 nodes: or, and, >, +, abs, neg, *, count, 2, 7, in, lane, 3 strings, not, and,
  // starts_with, name, "Hell", <, -, speed, v.
  ExprPtr seven = MustCompile("7", f.env);
  CHECK(CodeBytes(code) == 24 * CodeBytes(CodeOf(*seven)));
  CHECK(CodeBytes(nullptr) == 0);
  PrefetchCode(code);  // a hint only: must not fault even past a small block
  PrefetchCode(CodeOf(*seven));

  EvalContext a = f.Ctx();
  EvalContext b = f.Ctx();
  CHECK(EvalCondition(*e, a));
  CHECK(EvalCondition(*code, b));
  f.ev.Set("lane", Value::String("walk"));  // left side false; the right side decides
  CHECK_FALSE(EvalCondition(*code, b));      // "Hello World" starts with "Hell", -42.5 < 10
  f.ev.Set("name", Value::String("Bye"));
  CHECK(EvalCondition(*code, b));
  CHECK(b.errors == 0);
  f.ev.Set("count", Value::String("x"));  // a type error deep in the left subtree
  EvalContext c = f.Ctx();
  CHECK(EvalCondition(*code, c));
  CHECK(ErrorBits(c.errors) == ErrorBits(kType));
  EvalContext d = f.Ctx();
  const Value sum = Eval(*CodeOf(*MustCompile("abs(neg) + v", f.env)), d);
  CHECK(Matches(sum, N(12.5)));
}

TEST_CASE("ResidualAfterLeadingTest: what is left of where once its leading test holds",
          "[expr][index]") {
  CompileEnv env;
  auto rest = [&](const char* where) -> std::string {
    ExprPtr e = MustCompile(where, env);
    ExprPtr r;
    if (!ResidualAfterLeadingTest(*e, &r)) return "<whole>";
    if (!r) return "<nothing>";
    REQUIRE(CodeOf(*r) != nullptr);  // evaluable
    return ExprCanonical(*r);
  };
  CHECK(rest("zone == \"a\" and lane == \"car\"") == "lane == \"car\"");
  CHECK(rest("\"a\" == zone and speed > 3") == "speed > 3");
  CHECK(rest("zone in [\"a\", \"b\"] and speed > 3 and lane != \"bus\"") ==
        "speed > 3 and lane != \"bus\"");
  CHECK(rest("(zone == \"a\" and speed > 3) and (lane == \"car\" or x)") ==
        "speed > 3 and (lane == \"car\" or x)");
  CHECK(rest("zone == \"a\"") == "<nothing>");
  CHECK(rest("zone == 3 and (a or b)") == "a or b");
  // Not the first conjunct, or no test at all: evaluate the whole.
  CHECK(rest("exists(x) and zone == \"a\"") == "<whole>");
  CHECK(rest("speed > 3 and zone == \"a\"") == "<whole>");
  CHECK(rest("zone == \"a\" or lane == \"car\"") == "<whole>");
  CHECK(rest("not (zone == \"a\")") == "<whole>");

  // The rest evaluates like the whole on an event whose test holds.
  Fixture f;
  ExprPtr whole = MustCompile("lane == \"bus\" and speed > 40 and name == \"x\" + 1", f.env);
  ExprPtr r;
  REQUIRE(ResidualAfterLeadingTest(*whole, &r));
  REQUIRE(r);
  EvalContext a = f.Ctx();
  EvalContext b = f.Ctx();
  CHECK(EvalCondition(*whole, a) == EvalCondition(*r, b));
  CHECK(a.errors == kType);
  CHECK(b.errors == kType);
}

}  // namespace
}  // namespace vigie::rules
