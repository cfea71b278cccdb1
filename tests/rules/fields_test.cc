// FieldNames and EventFields (rules/fields.h): numbers are stable and found again, unknown names
// have none; reading an event by number, first and cached reads, answers exactly what Event::Get
// answers by name — duplicate names (the first wins), "kind" and "ts" as fields or as the
// event's own, missing fields, names the rules never read — over random events reusing one
// EventFields (a cached answer never leaks into the next event); a rebind follows new rules; and
// a rule set numbers what its rules read.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "rules/fields.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "tests/rules/test_support.h"

using namespace vigie::rules;
using namespace vigie::rules::testing;

namespace {

// Renders a Value for comparison (type and contents).
std::string Show(const Value& v) {
  switch (v.type) {
    case Type::kMissing: return "missing";
    case Type::kString: return "s:" + std::string(v.str);
    case Type::kNumber: return "n:" + std::to_string(v.num);
    case Type::kBool: return v.b ? "b:true" : "b:false";
  }
  return "?";
}

}  // namespace

TEST_CASE("fields: names get stable numbers; unknown names have none", "[fields]") {
  FieldNames names;
  CHECK(names.Find("device") == kNoField);
  const uint32_t device = names.Intern("device");
  const uint32_t zone = names.Intern("zone");
  CHECK(device == 0);
  CHECK(zone == 1);
  CHECK(names.Intern("device") == device);  // once
  CHECK(names.size() == 2);
  CHECK(names.Find("zone") == zone);
  CHECK(names.Find("zon") == kNoField);
  CHECK(names.Find("zonee") == kNoField);
  CHECK(names.Find("") == kNoField);
  CHECK(names.kind_id() == kNoField);
  const uint32_t kind = names.Intern("kind");
  CHECK(names.kind_id() == kind);
  CHECK(names.ts_id() == kNoField);
  // Many names, alike but for their ends.
  std::vector<uint32_t> ids;
  for (int i = 0; i < 300; ++i) ids.push_back(names.Intern("sensor.reading." + std::to_string(i)));
  const uint32_t empty = names.Intern("");
  for (int i = 0; i < 300; ++i) {
    CHECK(names.Find("sensor.reading." + std::to_string(i)) == ids[static_cast<size_t>(i)]);
    CHECK(names.name(ids[static_cast<size_t>(i)]) == "sensor.reading." + std::to_string(i));
  }
  CHECK(names.Find("") == empty);
  CHECK(names.Find("device") == device);
  CHECK(names.Find("sensor.reading.300") == kNoField);
  CHECK(names.size() == 304);
}

TEST_CASE("fields: reading by number answers what Event::Get answers by name", "[fields][property]") {
  // The pool the events draw from; the rules read only some of it.
  const std::vector<std::string> pool = {"device", "zone", "vehicles", "kind", "ts", "level",
                                         "gps.lat", "a_rather_long_field_name", ""};
  FieldNames names;
  for (const char* n : {"zone", "kind", "device", "ts", "gps.lat", "a_rather_long_field_name"})
    names.Intern(n);
  names.Intern("never_sent");
  EventFields fields;
  fields.Bind(&names);
  std::mt19937_64 rng(7);
  int duplicates = 0, kind_fields = 0;
  for (int e = 0; e < 3000; ++e) {
    Event ev;
    ev.kind = e % 3 ? "camera.status" : "lamp";
    ev.ts_ms = 1795726800000 + e;
    const int n = static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i) {
      Field& f = ev.fields.emplace_back();
      f.name = pool[rng() % pool.size()];
      switch (rng() % 3) {
        case 0: f.value.Assign(Value::String("v" + std::to_string(i))); break;
        case 1: f.value.Assign(Value::Number(static_cast<double>(i))); break;
        default: f.value.Assign(Value::Bool(i % 2 == 0)); break;
      }
    }
    for (size_t i = 0; i < ev.fields.size(); ++i) {
      if (ev.fields[i].name == "kind") ++kind_fields;
      for (size_t j = 0; j < i; ++j) duplicates += ev.fields[i].name == ev.fields[j].name;
    }
    fields.Load(ev);
    CHECK(fields.Holds(&ev));
    // Twice, in two orders: the first read of a number finds it, the later ones are cached.
    for (int pass = 0; pass < 2; ++pass) {
      for (uint32_t k = 0; k < names.size(); ++k) {
        const uint32_t id = pass == 0 ? k : static_cast<uint32_t>(names.size()) - 1 - k;
        INFO("event " << e << " pass " << pass << " field " << names.name(id));
        CHECK(Show(fields.Get(id, names.name(id))) == Show(ev.Get(names.name(id))));
      }
    }
    // Not numbered: by name.
    CHECK(Show(fields.Get(kNoField, "level")) == Show(ev.Get("level")));
    CHECK(Show(fields.Get(kNoField, "vehicles")) == Show(ev.Get("vehicles")));
  }
  // The draws covered what matters.
  CHECK(duplicates > 100);
  CHECK(kind_fields > 100);
  fields.Release();
  Event other;
  CHECK_FALSE(fields.Holds(&other));
  CHECK_FALSE(fields.Holds(nullptr));
}

TEST_CASE("fields: a rebind follows the new numbering; unbound reads go by name", "[fields]") {
  Event ev = MakeEvent(kT0, "k", {{"zone", "north"}, {"device", "d1"}});
  FieldNames a, b;
  a.Intern("zone");
  a.Intern("device");
  b.Intern("device");
  b.Intern("extra");
  b.Intern("zone");
  EventFields fields;
  fields.Bind(&a);
  fields.Load(ev);
  CHECK(Show(fields.Get(a.Find("zone"), "zone")) == "s:north");  // number 0 cached: field 0
  fields.Bind(&b);
  fields.Load(ev);
  // Number 0 is "device" now: what `a`'s numbering cached must not answer for it.
  CHECK(Show(fields.Get(b.Find("device"), "device")) == "s:d1");
  CHECK(Show(fields.Get(b.Find("zone"), "zone")) == "s:north");
  CHECK(Show(fields.Get(b.Find("extra"), "extra")) == "missing");
  EventFields unbound;
  unbound.Load(ev);
  CHECK(Show(unbound.Get(0, "device")) == "s:d1");
}

TEST_CASE("fields: a rule set numbers every field its rules read", "[fields]") {
  auto rs = MustCompile(R"(rules:
  - name: jam
    on: traffic.count
    group_by: [zone, lane]
    where: 'site == "a" and exists(gps.lat)'
    window: {sliding: 1m}
    let: {busy: 'vehicles > 3'}
    when: 'sum(vehicles) > 100 and busy and speed < 10'
    then:
      - alert: {severity: info, summary: x}
)");
  for (const char* n : {"zone", "lane", "site", "gps.lat", "vehicles", "speed"}) {
    INFO(n);
    CHECK(rs->fields.Find(n) != kNoField);
  }
  CHECK(rs->fields.Find("device") == kNoField);  // group_by replaced the default
  REQUIRE(rs->groupset_fields.size() == 1);
  CHECK(rs->groupset_fields[0] ==
        std::vector<uint32_t>{rs->fields.Find("zone"), rs->fields.Find("lane")});
}

TEST_CASE("fields: a timer reads the event it kept by name, not the last event the engine read",
          "[fields][engine]") {
  // `double` reads the event's field: at the `for` timer the engine evaluates it on the group's
  // kept event (t = 36.5), while the last event it read by number was another device's (t = 10).
  auto rs = MustCompile(R"(rules:
  - name: hot
    on: temp
    let: {double: 't * 2'}
    when: t > 30
    for: 1m
    then:
      - alert: {severity: warning, summary: "Hot {device} {double}"}
)");
  FixedOffsetZone tz(0);
  EngineOptions opts;
  opts.tz = &tz;
  Engine engine(rs, opts);
  Collect out;
  const std::vector<Event> evs = {
      MakeEvent(kT0, "temp", {{"device", "s1"}, {"t", 35}}),
      MakeEvent(kT0 + 30'000, "temp", {{"device", "s1"}, {"t", 36.5}}),
      MakeEvent(kT0 + 45'000, "temp", {{"device", "s2"}, {"t", 10}}),
  };
  for (const Event& ev : evs) engine.Process(ev, ev.ts_ms, out);
  CHECK(out.outs.empty());
  engine.AdvanceTo(kT0 + 120'000, out);
  REQUIRE(out.outs.size() == 1);
  CHECK(out.outs[0].summary == "Hot s1 73");
  CHECK(out.outs[0].ts_ms == kT0 + 60'000);
}
