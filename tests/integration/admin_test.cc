// The admin and monitoring HTTP surface of the running daemon: /healthz, /readyz, /metrics (a
// real Prometheus text parse, the metrics INTERFACES.md lists), /rules, POST /-/reload (summary;
// a broken rules file -> 400 with FILE:LINE:COL and the old rules, with their state, still fire).
#include <cmath>
#include <regex>

#include <simdjson.h>

#include "tests/integration/it_test.h"

using namespace vigie::it;

namespace {

const char* const kMainRules = R"(rules:
  - name: hot
    description: Fans on while a device is hot.
    on: temp
    when: v > 50
    then:
      - command: {target: "fans/{device}", action: "on"}
      - alert: {severity: warning, summary: "{device} hot"}
    otherwise:
      - command: {target: "fans/{device}", action: "off"}
  - name: busy
    on: hit
    window: {sliding: 30s}
    let:
      n: count()
    when: n >= 3
    then:
      - alert: {severity: info, summary: "{key} busy"}
)";

// Line 7 (1-based) holds an unknown key at column 5.
const char* const kBrokenRules = R"(rules:
  - name: hot
    on: temp
    when: v > 50
    then:
      - command: {target: "fans/{device}", action: "on"}
    wen: v > 60
)";

const char* const kRequiredMetrics[] = {
    "vigie_events_received_total",   "vigie_events_rejected_total",
    "vigie_events_processed_total",  "vigie_rule_evaluations_total",
    "vigie_rule_activations_total",  "vigie_rule_errors_total",
    "vigie_rule_active_groups",      "vigie_commands_sent_total",
    "vigie_alerts_sent_total",       "vigie_queue_depth",
    "vigie_event_latency_seconds",   "vigie_state_groups",
    "vigie_checkpoint_duration_seconds", "vigie_rules_loaded",
    "vigie_config_last_reload_successful", "process_resident_memory_bytes",
    "process_cpu_seconds_total",     "process_start_time_seconds",
};

struct RuleRow {
  std::string name, file;
  int64_t active_groups = -1, evaluations = -1, activations = -1, errors = -1;
};

std::vector<RuleRow> ParseRules(const std::string& body, std::string* error) {
  std::vector<RuleRow> rows;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) {
    *error = "not JSON: " + body;
    return rows;
  }
  simdjson::dom::array arr;
  if (doc.get_array().get(arr)) {
    *error = "not a JSON array: " + body;
    return rows;
  }
  for (simdjson::dom::element e : arr) {
    RuleRow r;
    std::string_view s;
    if (!e["name"].get_string().get(s)) r.name = std::string(s);
    if (!e["file"].get_string().get(s)) r.file = std::string(s);
    int64_t v;
    if (!e["active_groups"].get_int64().get(v)) r.active_groups = v;
    if (!e["evaluations"].get_int64().get(v)) r.evaluations = v;
    if (!e["activations"].get_int64().get(v)) r.activations = v;
    if (!e["errors"].get_int64().get(v)) r.errors = v;
    rows.push_back(r);
  }
  return rows;
}

const RuleRow* Find(const std::vector<RuleRow>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("Admin HTTP: health, readiness, metrics, rules, reload", "[integration][admin]") {
  TempDir dir;
  Daemon d(dir.path());
  d.WriteRules("main.yaml", kMainRules);
  IT_START(d);
  Sender in(d.source_endpoint());
  Outputs out(d);

  HttpReply h = HttpGet(d.port(), "/healthz");
  CHECK(h.status == 200);
  CHECK(HttpGet(d.port(), "/readyz").status == 200);
  CHECK(HttpGet(d.port(), "/no-such-page").status == 404);
  CHECK(HttpGet(d.port(), "/-/reload").status == 405);
  CHECK(HttpPost(d.port(), "/metrics").status == 405);

  in.Send(R"({"kind": "temp", "device": "d1", "v": 60})");  // fires
  in.Send(R"({"kind": "temp", "device": "d2", "v": 10})");
  in.Send(R"({"kind": "temp", "device": "d3"})");  // v missing: an evaluation error
  in.Send(R"({"kind": "hit", "device": "h1"})");
  in.Send(R"({"kind": "hit", "device": "h1"})");   // busy: 2 of 3
  IT_BARRIER(in, out);
  REQUIRE(CanonSorted(out.all()) ==
          SortedStrings({"command rule=hot key=d1 target=fans/d1 action=on params={}",
                                   "alert rule=hot key=d1 state=firing severity=warning summary=d1 hot labels={}"}));

  SECTION("metrics") {
    HttpReply r = HttpGet(d.port(), "/metrics");
    REQUIRE(r.status == 200);
    Metrics m = ParseMetrics(r.body);
    for (const auto& e : m.errors) UNSCOPED_INFO(e);
    CHECK(m.errors.empty());
    for (const char* name : kRequiredMetrics) {
      INFO("metric " << name);
      CHECK(m.HasFamily(name));
      // A histogram has no sample of its own name: its _count is there instead.
      const bool histogram = m.types[name] == "histogram";
      CHECK(!std::isnan(m.Get(histogram ? std::string(name) + "_count" : std::string(name))));
    }
    CHECK(m.types["vigie_event_latency_seconds"] == "histogram");
    CHECK(m.types["vigie_checkpoint_duration_seconds"] == "histogram");
    CHECK(m.types["vigie_events_received_total"] == "counter");
    CHECK(m.types["vigie_rule_active_groups"] == "gauge");
    CHECK(!std::isnan(m.Get("vigie_event_latency_seconds_bucket", {{"le", "+Inf"}})));
    CHECK(m.Get("vigie_event_latency_seconds_count") >= 6);
    CHECK(m.Get("vigie_events_received_total", {{"source", "in"}}) == 6);
    CHECK(m.Get("vigie_events_processed_total") >= 6);
    CHECK(m.Get("vigie_rule_evaluations_total", {{"rule", "hot"}}) == 3);
    CHECK(m.Get("vigie_rule_activations_total", {{"rule", "hot"}}) == 1);
    CHECK(m.Get("vigie_rule_active_groups", {{"rule", "hot"}}) == 1);
    CHECK(m.Get("vigie_rule_errors_total", {{"rule", "hot"}}) >= 1);
    CHECK(m.Get("vigie_rule_errors_total", {{"rule", "busy"}}) == 0);
    CHECK(m.Get("vigie_rules_loaded") == 3);  // probe, hot, busy
    CHECK(m.Get("vigie_commands_sent_total") == 2);  // hot + the probe
    CHECK(m.Get("vigie_alerts_sent_total", {{"severity", "warning"}, {"state", "firing"}}) == 1);
    CHECK(m.Get("vigie_config_last_reload_successful") == 1);
    CHECK(m.Get("process_resident_memory_bytes") > 1e6);
    CHECK(std::fabs(m.Get("process_start_time_seconds") - NowMs() / 1000.0) < 600);
    // Labels name rules, shards, sources: never event keys.
    for (const auto& s : m.samples)
      for (const auto& [k, v] : s.labels) CHECK((v != "d1" && v != "h1"));
  }

  SECTION("rules") {
    HttpReply r = HttpGet(d.port(), "/rules");
    REQUIRE(r.status == 200);
    std::string err;
    auto rows = ParseRules(r.body, &err);
    INFO(err << r.body);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].name == "probe");
    const RuleRow* hot = Find(rows, "hot");
    const RuleRow* busy = Find(rows, "busy");
    REQUIRE(hot);
    REQUIRE(busy);
    CHECK(hot->file.size() >= 9);
    CHECK(hot->file.find("main.yaml") != std::string::npos);
    CHECK(hot->active_groups == 1);
    CHECK(hot->evaluations == 3);
    CHECK(hot->activations == 1);
    CHECK(hot->errors >= 1);
    CHECK(busy->evaluations == 2);
    CHECK(busy->activations == 0);
    CHECK(busy->active_groups == 0);
  }

  SECTION("reload: ok with a summary; broken -> 400 with FILE:LINE:COL and the old rules still fire") {
    HttpReply ok = HttpPost(d.port(), "/-/reload");
    INFO(ok.body);
    CHECK(ok.status == 200);
    CHECK(ok.body.rfind("ok: 3 rules in 2 files", 0) == 0);

    d.WriteRules("main.yaml", kBrokenRules);
    HttpReply bad = HttpPost(d.port(), "/-/reload");
    INFO(bad.body);
    CHECK(bad.status == 400);
    const std::string place = d.rules_dir() + "/main.yaml:7:5: ";
    CHECK(bad.body.find(place) != std::string::npos);
    CHECK(std::regex_search(bad.body, std::regex(R"(main\.yaml:\d+:\d+: .*wen)")));
    Metrics m = d.Scrape();
    CHECK(m.Get("vigie_config_last_reload_successful") == 0);
    CHECK(m.Get("vigie_rules_loaded") == 3);

    // The previous rules, with their state, are in force: busy (2 of 3 before) fires on the
    // third hit; hot (which the broken file changes) still answers as before.
    out.Clear();
    in.Send(R"({"kind": "hit", "device": "h1"})");
    in.Send(R"({"kind": "temp", "device": "d4", "v": 70})");
    IT_BARRIER(in, out);
    CHECK(CanonSorted(out.all()) ==
          SortedStrings({
              "alert rule=busy key=h1 state=firing severity=info summary=h1 busy labels={}",
              "command rule=hot key=d4 target=fans/d4 action=on params={}",
              "alert rule=hot key=d4 state=firing severity=warning summary=d4 hot labels={}"}));

    d.WriteRules("main.yaml", kMainRules);
    HttpReply again = HttpPost(d.port(), "/-/reload");
    CHECK(again.status == 200);
    CHECK(d.Metric("vigie_config_last_reload_successful") == 1);
  }
  IT_STOP_CLEAN(d);
}
