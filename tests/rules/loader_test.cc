// Loader: every problem listed under "Errors when rules load" (RULES.md) is reported as
// FILE:LINE:COLUMN: message, at the place of the problem; all problems of a load are reported;
// any problem rejects the whole load. Also: what a good file compiles to.
#include <catch2/catch.hpp>

#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

std::vector<LoadError> LoadErrors(const std::vector<RuleSource>& srcs) {
  std::vector<LoadError> errors;
  auto rs = CompileRules(srcs, &errors);
  CHECK(rs == nullptr);
  return errors;
}

std::vector<LoadError> LoadErrors(const std::string& text, const std::string& file = "f.yaml") {
  return LoadErrors({RuleSource{file, text}});
}

std::string All(const std::vector<LoadError>& errs) {
  std::string s;
  for (const auto& e : errs) s += e.ToString() + "\n";
  return s;
}

// True if one error is at file:line:col and its message contains `part`.
bool Has(const std::vector<LoadError>& errs, const std::string& file, int line, int col,
         const std::string& part) {
  for (const auto& e : errs)
    if (e.file == file && e.line == line && e.col == col && e.message.find(part) != std::string::npos)
      return true;
  return false;
}

#define CHECK_ERROR(errs, file, line, col, part) \
  do {                                           \
    INFO(All(errs));                             \
    CHECK(Has(errs, file, line, col, part));     \
  } while (0)

}  // namespace

TEST_CASE("loader: ToString is FILE:LINE:COLUMN: message", "[loader]") {
  LoadError e{"rules/a.yaml", 3, 7, "boom"};
  CHECK(e.ToString() == "rules/a.yaml:3:7: boom");
  LoadError nowhere{"rules/a.yaml", 0, 0, "unreadable"};
  CHECK(nowhere.ToString() == "rules/a.yaml: unreadable");
}

TEST_CASE("loader: YAML syntax error is placed and prefixed", "[loader]") {
  auto errs = LoadErrors(
      "rules:\n"
      "  - name: a\n"
      "    on: x\n"
      "    when: [y, z\n");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].file == "f.yaml");
  CHECK(errs[0].line >= 3);
  CHECK(errs[0].message.find("YAML syntax") == 0);
}

TEST_CASE("loader: unknown key in a rule", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    wehn: y == 1
    when: y == 1
)");
  REQUIRE(errs.size() == 1);
  CHECK_ERROR(errs, "f.yaml", 4, 5, "unknown key 'wehn'");
}

TEST_CASE("loader: unknown top-level key and unknown window kind", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    window: {slidding: 1m}
    when: count() > 1
rule: []
)");
  CHECK_ERROR(errs, "f.yaml", 4, 14, "unknown window kind 'slidding'");
  CHECK_ERROR(errs, "f.yaml", 6, 1, "unknown top-level key 'rule'");
}

TEST_CASE("loader: missing on and missing when are placed at the rule", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: no-on
    when: x == 1
  - name: no-when
    on: x
)");
  REQUIRE(errs.size() == 2);
  CHECK_ERROR(errs, "f.yaml", 2, 5, "no `on`");
  CHECK_ERROR(errs, "f.yaml", 4, 5, "no `when`");
  CHECK(errs[0].message.find("no-on") != std::string::npos);
}

TEST_CASE("loader: bad durations, bare numbers included", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    when: y == 1
    for: 10
  - name: b
    on: x
    when: y == 1
    for: 10 minutes
  - name: c
    on: x
    window: {sliding: 5}
    when: count() > 1
  - name: d
    on: x
    absent_for: 2x
  - name: e
    on: x
    when: y == 1
    for: 0s
)");
  CHECK(errs.size() == 5);
  CHECK_ERROR(errs, "f.yaml", 5, 10, "bad duration for for");
  CHECK_ERROR(errs, "f.yaml", 9, 10, "bad duration for for");
  CHECK_ERROR(errs, "f.yaml", 12, 23, "bad duration for sliding");
  CHECK_ERROR(errs, "f.yaml", 16, 17, "bad duration for absent_for");
  CHECK_ERROR(errs, "f.yaml", 20, 10, "longer than 0");
}

TEST_CASE("loader: unknown function and bad field form are placed inside the expression",
          "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    when: y == 1 and frobnicate(y) > 2
  - name: b
    on: x
    where: "field(3) == 1"
    when: y == 1
)");
  CHECK_ERROR(errs, "f.yaml", 4, 22, "frobnicate");
  bool b_reported = false;
  // Somewhere in field(3) (columns 13 to 20), with a hint at the right form.
  for (const auto& e : errs)
    b_reported |= e.line == 7 && e.col >= 13 && e.col <= 20 &&
                  e.message.find("field(\"") != std::string::npos;
  INFO(All(errs));
  CHECK(b_reported);
}

TEST_CASE("loader: an expression error in a block scalar is placed on its line", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    when: |
      status == "fault"
      and nope(1)
)");
  CHECK_ERROR(errs, "f.yaml", 6, 11, "nope");
}

TEST_CASE("loader: aggregate in a rule without window", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    when: count() > 3
  - name: b
    on: x
    let:
      total: sum(v)
    when: total > 3
)");
  CHECK_ERROR(errs, "f.yaml", 4, 11, "count");
  CHECK_ERROR(errs, "f.yaml", 8, 14, "sum");
}

TEST_CASE("loader: template names that cannot resolve in windowed and absence rules", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: w
    on: x
    group_by: zone
    window: {sliding: 1m}
    let:
      n: count()
    when: n > 1
    then:
      - command: {target: "a/{zone}/{n}/{rule}/{key}", action: "go-{speed}"}
  - name: s
    on: x
    absent_for: 1m
    then:
      - alert: {severity: info, summary: "Silent {device} {model}"}
)");
  REQUIRE(errs.size() == 2);
  // At the '{' of the offending name.
  CHECK_ERROR(errs, "f.yaml", 10, 68, "'{speed}' cannot resolve");
  CHECK_ERROR(errs, "f.yaml", 15, 59, "'{model}' cannot resolve");
  CHECK(errs[0].message.find("{zone}, {n}, {rule}, {key}") != std::string::npos);
}

TEST_CASE("loader: templates of stateless rules may name event fields", "[loader]") {
  auto rs = MustCompile(R"(rules:
  - name: s
    on: x
    when: y == 1
    then:
      - command: {target: "a/{anything}", action: "{rule}-{key}", p: "{{literal}}"}
)");
  const Rule& r = rs->rules[0];
  REQUIRE(r.then.size() == 1);
  REQUIRE(r.then[0].target.parts.size() == 2);
  CHECK(r.then[0].target.parts[1].kind == Template::Part::Kind::kEvent);
}

TEST_CASE("loader: malformed templates", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: s
    on: x
    when: y == 1
    then:
      - command: {target: "a/{open", action: "b}"}
)");
  CHECK(errs.size() == 2);
  CHECK_ERROR(errs, "f.yaml", 6, 30, "unclosed '{'");
  CHECK_ERROR(errs, "f.yaml", 6, 48, "unmatched '}'");
}

TEST_CASE("loader: duplicate rule name across two files", "[loader]") {
  std::string a = R"(rules:
  - name: same
    on: x
    when: y == 1
)";
  std::string b = R"(rules:
  - name: other
    on: x
    when: y == 1
  - name: same
    on: z
    when: y == 2
)";
  auto errs = LoadErrors({RuleSource{"a.yaml", a}, RuleSource{"b.yaml", b}});
  REQUIRE(errs.size() == 1);
  CHECK_ERROR(errs, "b.yaml", 5, 11, "duplicate rule name 'same'");
  CHECK(errs[0].message.find("a.yaml:2") != std::string::npos);
}

TEST_CASE("loader: absent_for together with window or when", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: a
    on: x
    absent_for: 1m
    window: {sliding: 1m}
  - name: b
    on: x
    absent_for: 1m
    when: y == 1
)");
  REQUIRE(errs.size() == 2);
  CHECK_ERROR(errs, "f.yaml", 5, 13, "`absent_for` cannot be used together with `window`");
  CHECK_ERROR(errs, "f.yaml", 9, 11, "`absent_for` cannot be used together with `when`");
}

TEST_CASE("loader: bad rule names", "[loader]") {
  auto errs = LoadErrors(R"(rules:
  - name: Bad_Name
    on: x
    when: y == 1
  - name: -dash-first
    on: x
    when: y == 1
  - name: "sp ace"
    on: x
    when: y == 1
)");
  REQUIRE(errs.size() == 3);
  CHECK_ERROR(errs, "f.yaml", 2, 11, "bad rule name 'Bad_Name'");
  CHECK_ERROR(errs, "f.yaml", 5, 11, "bad rule name '-dash-first'");
  CHECK_ERROR(errs, "f.yaml", 8, 11, "bad rule name 'sp ace'");
  // Good names.
  MustCompile(R"(rules:
  - name: 0a.b_c-d
    on: x
    when: y == 1
)");
}

TEST_CASE("loader: every problem of a file is reported, and one bad file rejects the load",
          "[loader]") {
  std::string good = R"(rules:
  - name: good
    on: x
    when: y == 1
)";
  std::string bad = R"(rules:
  - name: one
    on: x
    when: y ==
  - name: two
    on: x
    when: y == 1
    for: 3
  - name: three
    on: x
    colour: red
    when: y == 1
)";
  std::vector<LoadError> errors;
  auto rs = CompileRules({RuleSource{"good.yaml", good}, RuleSource{"bad.yaml", bad}}, &errors);
  CHECK(rs == nullptr);
  INFO(All(errors));
  CHECK(errors.size() == 3);
  bool l4 = false, l8 = false, l11 = false;
  for (const auto& e : errors) {
    CHECK(e.file == "bad.yaml");
    l4 |= e.line == 4;
    l8 |= e.line == 8;
    l11 |= e.line == 11 && e.col == 5;
  }
  CHECK(l4);
  CHECK(l8);
  CHECK(l11);
  // Errors from two files are all reported.
  errors.clear();
  rs = CompileRules({RuleSource{"bad.yaml", bad}, RuleSource{"bad2.yaml", bad}}, &errors);
  CHECK(rs == nullptr);
  CHECK(errors.size() == 6);
}

TEST_CASE("loader: a good load compiles every rule in file order", "[loader]") {
  std::vector<LoadError> errors;
  auto rs = CompileRules(
      {RuleSource{"a.yaml", R"(rules:
  - name: a1
    on: [x, "cam.*"]
    when: y == 1
  - name: a2
    on: x
    group_by: [zone, lane]
    window: {tumbling: 1m}
    when: count() > 1
)"},
       RuleSource{"b.yaml", R"(rules:
  - name: b1
    on: x
    absent_for: 1h30m
)"}},
      &errors);
  REQUIRE(rs);
  CHECK(errors.empty());
  REQUIRE(RuleCount(*rs) == 3);
  CHECK(RuleFileCount(*rs) == 2);
  CHECK(GetRuleInfo(*rs, 0).name == "a1");
  CHECK(GetRuleInfo(*rs, 0).kind == "stateless");
  CHECK(GetRuleInfo(*rs, 1).kind == "tumbling");
  CHECK(GetRuleInfo(*rs, 1).line == 5);
  CHECK(GetRuleInfo(*rs, 2).file == "b.yaml");
  CHECK(GetRuleInfo(*rs, 2).kind == "absence");
  CHECK(rs->rules[2].absent_for_ms == 90 * 60000);
  CHECK(rs->rules[0].group_by == std::vector<std::string>{"device"});
  CHECK(rs->rules[1].group_by == std::vector<std::string>{"zone", "lane"});
  std::vector<uint32_t> m;
  rs->Match("x", &m);
  CHECK(m == std::vector<uint32_t>{0, 1, 2});
  rs->Match("cam.status", &m);
  CHECK(m == std::vector<uint32_t>{0});
  rs->Match("cam", &m);
  CHECK(m.empty());
}

TEST_CASE("loader: YAML 1.2 reading: `on` is a key, off/yes are strings", "[loader]") {
  auto rs = MustCompile(R"(rules:
  - name: a
    on: off
    when: mode == "yes"
    then:
      - command: {target: t, action: off, flag: yes, n: 0x10, f: 1e3, s: "12"}
)");
  const Rule& r = rs->rules[0];
  CHECK(r.on_exact == std::vector<std::string>{"off"});
  REQUIRE(r.then[0].params.size() == 4);
  CHECK(r.then[0].params[0].constant.kind == ParamValue::Kind::kString);  // yes: a string in 1.2
  CHECK(r.then[0].params[1].constant.kind == ParamValue::Kind::kNumber);
  CHECK(r.then[0].params[1].constant.num == 16);
  CHECK(r.then[0].params[2].constant.num == 1000);
  CHECK(r.then[0].params[3].constant.kind == ParamValue::Kind::kString);
}

TEST_CASE("loader: fingerprint follows the state-relevant definition only", "[loader]") {
  auto fp = [](const std::string& extra_desc, const std::string& when, const std::string& then) {
    auto rs = MustCompile("rules:\n  - name: a\n    description: " + extra_desc +
                          "\n    on: x\n    window: {sliding: 1m}\n    when: " + when +
                          "\n    then:\n      - command: {target: t, action: " + then + "}\n");
    return GetRuleInfo(*rs, 0).fingerprint;
  };
  CHECK(fp("one", "count() > 1", "a") == fp("two", "count() > 1", "a"));
  CHECK(fp("one", "count() > 1", "a") != fp("one", "count() > 2", "a"));
}
