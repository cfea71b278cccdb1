// RuleIndex (rules/index.h): which test of `where` a rule is filed under, what Match(ev) returns
// for equalities on strings, numbers and booleans, `in` lists, prefix kinds, missing and
// mistyped fields; and a property test: for random rule sets and events, Match(ev) holds every
// rule whose `on` matches and whose `where` is true or records an error, in ascending order,
// and nothing whose `on` does not match.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "rules/expr.h"
#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

using Ids = std::vector<uint32_t>;

// One stateless rule per `where` (empty: none), all on `on`.
std::string RulesText(const std::vector<std::string>& wheres, const std::string& on = "k") {
  std::string y = "rules:\n";
  for (size_t i = 0; i < wheres.size(); ++i) {
    y += "  - name: r" + std::to_string(i) + "\n    on: " + on + "\n";
    if (!wheres[i].empty()) y += "    where: '" + wheres[i] + "'\n";
    y += "    when: 'true'\n    then:\n      - alert: {severity: info, summary: x}\n";
  }
  return y;
}

// "field" or "-" (not indexed), then the constants: `zone: "a" 1 true`.
std::string KeyText(const RuleSet& rs, uint32_t i) {
  const RuleIndex::Key& k = rs.index.key(i);
  if (k.field.empty()) return "-";
  std::string s = k.field + ":";
  for (const OwnedValue& c : k.constants) {
    s += " ";
    if (c.type == Type::kString)
      s += "\"" + c.str + "\"";
    else
      AppendText(&s, c.view());
  }
  return s;
}

Ids MatchOf(const RuleSet& rs, const Event& ev) {
  Ids out;
  rs.Match(ev, &out);
  return out;
}

}  // namespace

TEST_CASE("index: a rule is filed under the test its `where` starts with", "[index]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(zone == "a")", R"(zone: "a")"},
      {R"("a" == zone)", R"(zone: "a")"},
      {R"(zone == "a" and speed > 3)", R"(zone: "a")"},
      {R"(zone == "a" and lane == "b" and speed > 3)", R"(zone: "a")"},
      {R"((zone == "a" and lane == "b") and speed > 3)", R"(zone: "a")"},
      {"n == 3", "n: 3"},
      {"n == -2.5", "n: -2.5"},
      {"3 == n", "n: 3"},
      {"flag == true", "flag: true"},
      {R"(zone in ["a", "b", 1, false])", R"(zone: "a" "b" 1 false)"},
      {R"(field("gps.zone") == "x")", R"(gps.zone: "x")"},
      {R"(kind == "k")", R"(kind: "k")"},
      // Conjuncts that can never record an error may come first.
      {R"(exists(zone) and zone == "a")", R"(zone: "a")"},
      {R"(true and not exists(x) and zone == "a")", R"(zone: "a")"},
      // Only the first test that may record an error qualifies: a later one would hide the
      // errors of those before it (speed missing: missing_field) if the rule were skipped.
      {R"(speed > 3 and zone == "a")", "-"},
      {R"(lane != "bus" and zone == "a")", "-"},
      {R"(exists(zone) and speed > 3 and zone == "a")", "-"},
      // Not tests of one field against constants.
      {R"(zone == "a" or zone == "b")", "-"},
      {R"((zone == "a" or lane == "b") and n == 1)", "-"},
      {R"(zone != "a")", "-"},
      {R"(not (zone == "a"))", "-"},
      {R"(zone not in ["a", "b"])", "-"},
      {R"(zone == lane)", "-"},
      {R"(zone in ["a", lane])", "-"},
      {R"(lower(zone) == "a")", "-"},
      {"n + 1 == 3", "-"},
      {"n > 3", "-"},
      {"", "-"},
  };
  std::vector<std::string> wheres;
  for (const auto& c : cases) wheres.push_back(c.first);
  auto rs = MustCompile(RulesText(wheres));
  for (uint32_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].first);
    CHECK(KeyText(*rs, i) == cases[i].second);
  }
}

TEST_CASE("index: equality on strings, numbers and booleans", "[index]") {
  auto rs = MustCompile(RulesText({
      R"(zone == "a")",              // 0
      R"(zone == "b")",              // 1
      "n == 3",                      // 2
      "n == 0",                      // 3
      "flag == true",                // 4
      "flag == false",               // 5
      "n > 1",                       // 6: not indexed, always a candidate
      R"(zone == "a" and n > 100)",  // 7
  }));
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", "a"}, {"n", 3}, {"flag", true}})) ==
        Ids{0, 2, 4, 6, 7});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", "b"}, {"n", 0}, {"flag", false}})) ==
        Ids{1, 3, 5, 6});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", "c"}, {"n", 4}, {"flag", false}})) == Ids{5, 6});
  // -0 == 0 for the language: the index agrees.
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", "c"}, {"n", -0.0}, {"flag", false}})) ==
        Ids{3, 5, 6});
  // NaN equals nothing, without error: no number rule is needed.
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", "c"}, {"n", std::nan("")}, {"flag", false}})) ==
        Ids{5, 6});
  // Another kind: nothing.
  CHECK(MatchOf(*rs, MakeEvent(kT0, "other", {{"zone", "a"}})).empty());
}

TEST_CASE("index: a missing or mistyped field keeps the rule (its error is counted)", "[index]") {
  auto rs = MustCompile(RulesText({
      R"(zone == "a")",  // 0
      "n == 3",          // 1
      "flag == true",    // 2
  }));
  // Missing: `zone == "a"` records missing_field.
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"n", 4}, {"flag", false}})) == Ids{0});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {})) == Ids{0, 1, 2});
  // Mistyped: `zone == "a"` with zone 5 records type_mismatch.
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", 5}, {"n", "3"}, {"flag", "true"}})) ==
        Ids{0, 1, 2});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"zone", true}, {"n", true}, {"flag", 1}})) ==
        Ids{0, 1, 2});
}

TEST_CASE("index: `in` lists", "[index]") {
  auto rs = MustCompile(RulesText({
      R"(status in ["ok", "fault"])",  // 0
      R"(status in ["off"])",          // 1
      R"(status in ["ok", 1])",        // 2: mixed: a number is of a listed type too
      R"(status in ["ok", "ok"])",     // 3: listed twice, returned once
  }));
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", "ok"}})) == Ids{0, 2, 3});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", "fault"}})) == Ids{0});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", "off"}})) == Ids{1});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", "x"}})).empty());
  // A number: rule 2 lists a number (false, no error unless equal); the others record
  // type_mismatch (no element of the value's type).
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", 2}})) == Ids{0, 1, 3});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", 1}})) == Ids{0, 1, 2, 3});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {{"status", false}})) == Ids{0, 1, 2, 3});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "k", {})) == Ids{0, 1, 2, 3});
}

TEST_CASE("index: prefix kinds and several kinds per rule", "[index]") {
  auto rs = MustCompile(R"(rules:
  - name: r0
    on: camera.*
    where: 'zone == "a"'
    when: 'true'
  - name: r1
    on: [camera.status, camera.*]
    when: 'true'
  - name: r2
    on: camera.status
    where: 'zone == "b"'
    when: 'true'
  - name: r3
    on: [cam*, traffic]
    where: 'zone in ["a", "b"]'
    when: 'true'
  - name: r4
    on: "*"
    where: 'zone == "c"'
    when: 'true'
  - name: r5
    on: camera.heartbeat
    when: 'true'
)");
  auto ev = [](const char* kind, const char* zone) {
    return MakeEvent(kT0, kind, {{"zone", zone}});
  };
  CHECK(MatchOf(*rs, ev("camera.status", "a")) == Ids{0, 1, 3});
  CHECK(MatchOf(*rs, ev("camera.status", "b")) == Ids{1, 2, 3});
  CHECK(MatchOf(*rs, ev("camera.status", "c")) == Ids{1, 4});
  CHECK(MatchOf(*rs, ev("camera.heartbeat", "a")) == Ids{0, 1, 3, 5});
  // A kind no rule names exactly: the prefix buckets.
  CHECK(MatchOf(*rs, ev("camera.ptz", "a")) == Ids{0, 1, 3});
  CHECK(MatchOf(*rs, ev("camera.ptz", "c")) == Ids{1, 4});
  CHECK(MatchOf(*rs, ev("cam", "b")) == Ids{3});
  CHECK(MatchOf(*rs, ev("traffic", "b")) == Ids{3});
  CHECK(MatchOf(*rs, ev("traffic", "d")).empty());
  CHECK(MatchOf(*rs, ev("lux", "c")) == Ids{4});
  CHECK(MatchOf(*rs, MakeEvent(kT0, "lux", {})) == Ids{4});
  // The kind-only Match is unchanged: every rule of the kind.
  Ids k;
  rs->Match(std::string_view("camera.status"), &k);
  CHECK(k == Ids{0, 1, 2, 3, 4});
}

TEST_CASE("index: Match reuses the caller's vector", "[index]") {
  auto rs = MustCompile(RulesText({R"(zone == "a")", "n > 1", R"(zone == "b")"}));
  Ids out;
  out.reserve(rs->rules.size());
  const uint32_t* data = out.data();
  for (int i = 0; i < 100; ++i) {
    rs->Match(MakeEvent(kT0, "k", {{"zone", i % 2 ? "a" : "b"}}), &out);
    CHECK(out.size() == 2);
  }
  CHECK(out.data() == data);
}

// ---------------------------------------------------------------------------------------------
// Property: random rules, random events.

namespace {

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  int Pick(int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); }
  const char* Field() {
    static const char* const kFields[] = {"a", "b", "c"};
    return kFields[Pick(3)];
  }
  std::string Const() {
    switch (Pick(4)) {
      case 0:
        return std::to_string(Pick(3));
      case 1:
        return std::string("\"s") + std::to_string(Pick(3)) + "\"";
      case 2:
        return Pick(2) ? "true" : "false";
      default:
        return Pick(2) ? "-0" : "1.5";
    }
  }
  std::string Test() {
    const std::string f = Field();
    switch (Pick(9)) {
      case 0:
        return f + " == " + Const();
      case 1:
        return Const() + " == " + f;
      case 2: {
        std::string s = f + " in [" + Const();
        for (int i = Pick(3); i > 0; --i) s += ", " + Const();
        return s + "]";
      }
      case 3:
        return f + " != " + Const();
      case 4:
        return f + " > " + std::to_string(Pick(3));
      case 5:
        return "exists(" + f + ")";
      case 6:
        return f + " == " + Field();
      case 7:
        return Pick(2) ? "true" : "not exists(" + f + ")";
      default:
        return f + " not in [" + Const() + "]";
    }
  }
  std::string Where(int depth = 0) {
    const int k = depth > 2 ? 0 : Pick(6);
    if (k <= 2) return Test();
    if (k == 3) return "(" + Where(depth + 1) + " or " + Where(depth + 1) + ")";
    if (k == 4) return "not (" + Where(depth + 1) + ")";
    return Where(depth + 1) + " and " + Where(depth + 1);
  }
  std::string On() {
    static const char* const kOn[] = {"k1", "k2",    "k.x",       "k.*",
                                      "k*", "\"*\"", "[k1, k.*]", "[k2, k.x]"};
    return kOn[Pick(8)];
  }
  void SetField(Event* ev, const char* name) {
    switch (Pick(7)) {
      case 0:
        return;  // missing
      case 1:
        ev->Set(name, Value::Number(Pick(3)));
        return;
      case 2:
        ev->Set(name, Value::Number(Pick(2) ? -0.0 : std::nan("")));
        return;
      case 3:
        ev->Set(name, Value::Number(1.5));
        return;
      case 4:
        ev->Set(name, Value::Bool(Pick(2)));
        return;
      default: {
        static const char* const kStr[] = {"s0", "s1", "s2", "x"};
        ev->Set(name, Value::String(kStr[Pick(4)]));
      }
    }
  }
  // A rule file of 1..40 rules of random `on` and (mostly) random `where`.
  std::string Rules() {
    std::string y = "rules:\n";
    const int n = 1 + Pick(40);
    for (int i = 0; i < n; ++i) {
      y += "  - name: r" + std::to_string(i) + "\n    on: " + On() + "\n";
      if (Pick(8)) y += "    where: '" + Where() + "'\n";
      y += "    when: 'true'\n";
    }
    return y;
  }
  Event MakeEv() {
    static const char* const kKinds[] = {"k1", "k2", "k.x", "k.y", "k", "kz", "other"};
    Event ev;
    ev.kind = kKinds[Pick(7)];
    for (const char* f : {"a", "b", "c"}) SetField(&ev, f);
    return ev;
  }
};

bool OnMatches(const Rule& r, const std::string& kind) {
  for (const auto& k : r.on_exact)
    if (k == kind) return true;
  for (const auto& p : r.on_prefix)
    if (kind.starts_with(p)) return true;
  return false;
}

}  // namespace

TEST_CASE("index: Match(ev) holds every rule whose where is true or records an error",
          "[index][property]") {
  int indexed = 0, skipped = 0, checked = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Gen g(seed);
    const std::string y = g.Rules();
    INFO(y);
    auto rs = MustCompile(y);
    for (uint32_t i = 0; i < rs->rules.size(); ++i) indexed += !rs->index.key(i).field.empty();
    EvalScratch scratch;
    Ids out;
    for (int e = 0; e < 200; ++e) {
      const Event ev = g.MakeEv();
      rs->Match(ev, &out);
      CHECK(std::is_sorted(out.begin(), out.end()));
      CHECK(std::adjacent_find(out.begin(), out.end()) == out.end());
      for (uint32_t i = 0; i < rs->rules.size(); ++i) {
        const Rule& r = rs->rules[i];
        const bool candidate = std::binary_search(out.begin(), out.end(), i);
        if (!OnMatches(r, ev.kind)) {
          CHECK_FALSE(candidate);
          continue;
        }
        bool needed = true;
        if (r.where) {
          EvalContext ctx;
          ctx.event = &ev;
          ctx.scratch = &scratch;
          scratch.Reset();
          const bool pass = EvalCondition(*r.where, ctx);
          needed = pass || ctx.errors != 0;
        }
        ++checked;
        if (!candidate) ++skipped;
        if (needed && !candidate) {
          std::string fields;
          for (const auto& f : ev.fields) {
            fields += " " + f.name + "=";
            AppendText(&fields, f.value.view());
            fields += "/" + std::to_string(static_cast<int>(f.value.type));
          }
          FAIL_CHECK("rule r" << i << " skipped for kind " << ev.kind << fields);
        }
      }
    }
  }
  // The generator exercises the index: some rules are filed, some evaluations are skipped.
  CHECK(indexed > 50);
  CHECK(skipped > checked / 50);
}

TEST_CASE("index: a rule tagged known evaluates the rest of where to the same result and errors; "
          "by field number as by name",
          "[index][property]") {
  int known = 0, with_rest = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    Gen g(seed);
    const std::string y = g.Rules();
    INFO(y);
    auto rs = MustCompile(y);
    EvalScratch scratch;
    Ids tagged, plain, by_number;
    EventFields fields;  // what the engine reads through: fields by the numbers of rs->fields
    fields.Bind(&rs->fields);
    for (int e = 0; e < 200; ++e) {
      const Event ev = g.MakeEv();
      rs->MatchTagged(ev, &tagged);
      rs->Match(ev, &plain);
      fields.Load(ev);
      rs->MatchTagged(fields, &by_number);
      CHECK(by_number == tagged);
      REQUIRE(tagged.size() == plain.size());
      for (size_t j = 0; j < tagged.size(); ++j) {
        const uint32_t i = tagged[j] >> 1;
        CHECK(i == plain[j]);
        if (!(tagged[j] & 1)) continue;
        const Rule& r = rs->rules[i];
        REQUIRE(r.where);
        ++known;
        if (!r.where_rest_ok) continue;
        ++with_rest;
        EvalContext whole, rest;
        whole.event = rest.event = &ev;
        whole.scratch = rest.scratch = &scratch;
        const bool w = EvalCondition(*r.where, whole);
        const bool p = r.where_rest ? EvalCondition(*r.where_rest, rest) : true;
        INFO("rule r" << i << " where " << ExprCanonical(*r.where) << " rest "
                      << (r.where_rest ? ExprCanonical(*r.where_rest) : "(none)"));
        CHECK(w == p);
        CHECK(whole.errors == rest.errors);
        EvalContext numbered;  // the same `where`, reading the event's fields by number
        numbered.event = &ev;
        numbered.fields = &fields;
        numbered.scratch = &scratch;
        CHECK(EvalCondition(*r.where, numbered) == w);
        CHECK(numbered.errors == whole.errors);
      }
    }
  }
  CHECK(known > 200);
  CHECK(with_rest > 100);
}

TEST_CASE("index: kinds are found by scan (few kinds) and by hash (many), alike", "[index]") {
  // Up to 64 exact kinds are scanned by (length, first 8 bytes); more go through a hash map.
  // Kinds that share their first 8 bytes and length must still be told apart.
  for (int kinds : {3, 64, 65, 200}) {
    INFO("kinds " << kinds);
    std::string y = "rules:\n";
    for (int i = 0; i < kinds; ++i) {
      y += "  - name: r" + std::to_string(i) + "\n    on: camera.kind-" + std::to_string(1000 + i) +
           "\n    when: 'true'\n";
    }
    auto rs = MustCompile(y);
    for (int i = 0; i < kinds; ++i) {
      Event ev = MakeEvent(0, "camera.kind-" + std::to_string(1000 + i), {{"device", "d"}});
      CHECK(MatchOf(*rs, ev) == Ids{static_cast<uint32_t>(i)});
    }
    CHECK(MatchOf(*rs, MakeEvent(0, "camera.kind-9999", {{"device", "d"}})).empty());
    CHECK(MatchOf(*rs, MakeEvent(0, "camera.k", {{"device", "d"}})).empty());
    CHECK(MatchOf(*rs, MakeEvent(0, "camera.kind-100", {{"device", "d"}})).empty());
    CHECK(MatchOf(*rs, MakeEvent(0, "", {{"device", "d"}})).empty());
  }
}
