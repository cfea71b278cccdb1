// `vigie test`: rule unit tests in YAML, run on virtual time (docs/rules.md, "Testing rules").
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/cli.h"
#include "daemon/util/rules_files.h"
#include "daemon/util/tz.h"
#include "plugins/codec/json_text.h"
#include "plugins/codec/output_codec.h"
#include "rules/expr.h"
#include "rules/loader.h"
#include "rules/replay.h"
#include "rules/timefmt.h"

namespace fs = std::filesystem;

namespace vigie::daemon {
namespace {

struct Failure {
  std::string where;  // FILE:LINE
  std::string text;
};

std::string Place(const std::string& file, const YAML::Node& n) {
  return file + ":" + std::to_string(n.Mark().line + 1);
}

bool IsPlain(const YAML::Node& n) { return n.Tag() == "?" || n.Tag().empty(); }

// A YAML scalar as a rules::Value-like typed thing (YAML 1.2 core schema for plain scalars).
void ScalarToEventValue(const YAML::Node& n, rules::OwnedValue* v) {
  const std::string& s = n.Scalar();
  if (IsPlain(n)) {
    if (s == "true" || s == "True" || s == "TRUE") { v->type = rules::Type::kBool; v->b = true; return; }
    if (s == "false" || s == "False" || s == "FALSE") { v->type = rules::Type::kBool; v->b = false; return; }
    if (s == "~" || s == "null" || s == "Null" || s == "NULL" || s.empty()) { v->type = rules::Type::kMissing; return; }
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == 0 && !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+' || s[0] == '.')) {
      v->type = rules::Type::kNumber;
      v->num = d;
      return;
    }
  }
  v->type = rules::Type::kString;
  v->str = s;
}

// Canonical JSON of a YAML node, with YAML 1.2 typing of plain scalars.
void YamlJson(const YAML::Node& n, std::string* out) {
  if (n.IsMap()) {
    // sorted keys so that member order does not matter
    std::vector<std::pair<std::string, std::string>> m;
    for (const auto& kv : n) {
      std::string v;
      YamlJson(kv.second, &v);
      m.emplace_back(kv.first.Scalar(), v);
    }
    std::sort(m.begin(), m.end());
    out->push_back('{');
    for (size_t i = 0; i < m.size(); ++i) {
      if (i) out->append(", ");
      codec::AppendJsonString(out, m[i].first);
      out->append(": ");
      out->append(m[i].second);
    }
    out->push_back('}');
  } else if (n.IsSequence()) {
    out->push_back('[');
    bool first = true;
    for (const auto& e : n) {
      if (!first) out->append(", ");
      first = false;
      YamlJson(e, out);
    }
    out->push_back(']');
  } else if (n.IsScalar()) {
    rules::OwnedValue v;
    ScalarToEventValue(n, &v);
    switch (v.type) {
      case rules::Type::kMissing: out->append("null"); break;
      case rules::Type::kNumber: codec::AppendJsonNumber(out, v.num); break;
      case rules::Type::kBool: out->append(v.b ? "true" : "false"); break;
      case rules::Type::kString: codec::AppendJsonString(out, v.str); break;
    }
  } else {
    out->append("null");
  }
}

// Canonical JSON of a kJson param: re-parse through YAML (JSON is YAML) to sort keys.
std::string CanonJsonText(const std::string& json) {
  try {
    std::string out;
    YamlJson(YAML::Load(json), &out);
    return out;
  } catch (...) {
    return json;
  }
}

std::string ParamJson(const rules::ParamValue& p) {
  std::string s;
  switch (p.kind) {
    case rules::ParamValue::Kind::kNull: s = "null"; break;
    case rules::ParamValue::Kind::kNumber: codec::AppendJsonNumber(&s, p.num); break;
    case rules::ParamValue::Kind::kBool: s = p.b ? "true" : "false"; break;
    case rules::ParamValue::Kind::kString: codec::AppendJsonString(&s, p.str); break;
    case rules::ParamValue::Kind::kJson: s = CanonJsonText(p.str); break;
  }
  return s;
}

class Collect : public rules::OutputSink {
 public:
  void Emit(rules::Output&& o) override { outs.push_back(std::move(o)); }
  std::vector<rules::Output> outs;
};

struct TimeBase {
  int64_t start = 0;
};

bool ParseAt(const YAML::Node& n, const TimeBase& tb, int64_t* t, std::string* err) {
  if (!n.IsScalar()) {
    *err = "a time must be \"+<duration>\", an RFC 3339 time or ms";
    return false;
  }
  const std::string& s = n.Scalar();
  if (!s.empty() && s[0] == '+') {
    int64_t d;
    std::string e;
    if (s == "+0" || s == "+0s" || s == "+0ms") {
      *t = tb.start;
      return true;
    }
    if (!rules::ParseDuration(s.substr(1), &d, &e)) {
      *err = "bad relative time '" + s + "': " + e;
      return false;
    }
    *t = tb.start + d;
    return true;
  }
  if (!ParseTimeArg(s, t)) {
    *err = "bad time '" + s + "' (expected \"+<duration>\", an RFC 3339 time or ms)";
    return false;
  }
  return true;
}

void FlattenInto(const std::string& prefix, const YAML::Node& n, rules::Event* ev) {
  for (const auto& kv : n) {
    std::string name = prefix + kv.first.Scalar();
    if (kv.second.IsMap()) {
      FlattenInto(name + ".", kv.second, ev);
    } else if (kv.second.IsScalar()) {
      rules::OwnedValue v;
      ScalarToEventValue(kv.second, &v);
      if (v.type == rules::Type::kMissing) continue;
      if (prefix.empty() && name == "kind" && v.type == rules::Type::kString) {
        ev->kind = v.str;
        continue;
      }
      ev->fields.push_back(rules::Field{name, v});
    }
  }
}

std::string Describe(const rules::Output& o) {
  std::string s;
  codec::EncodeOutputJson(o, &s);
  return s;
}

// Compares one expected entry to one output; appends the differences.
void Compare(const YAML::Node& exp, const TimeBase& tb, const rules::Output& got,
             std::vector<std::string>* diffs) {
  std::string err;
  if (exp["at"]) {
    int64_t t;
    if (!ParseAt(exp["at"], tb, &t, &err)) diffs->push_back(err);
    else if (t != got.ts_ms)
      diffs->push_back("ts: expected " + rules::FormatRfc3339Ms(t) + ", got " + rules::FormatRfc3339Ms(got.ts_ms));
  }
  YAML::Node body;
  bool want_cmd = false;
  if (exp["command"]) {
    body = exp["command"];
    want_cmd = true;
  } else if (exp["alert"]) {
    body = exp["alert"];
  } else {
    diffs->push_back("expected entry needs `command:` or `alert:`");
    return;
  }
  if (want_cmd != (got.type == rules::OutputType::kCommand)) {
    diffs->push_back(std::string("type: expected ") + (want_cmd ? "command" : "alert") + ", got " +
                     (want_cmd ? "alert" : "command"));
    return;
  }
  if (!body.IsMap()) return;
  for (const auto& kv : body) {
    const std::string k = kv.first.Scalar();
    auto cmp_text = [&](const std::string& g) {
      std::string e = kv.second.IsScalar() ? kv.second.Scalar() : "";
      if (e != g) diffs->push_back(k + ": expected \"" + e + "\", got \"" + g + "\"");
    };
    if (k == "rule") cmp_text(got.rule);
    else if (k == "key") cmp_text(got.key);
    else if (want_cmd && k == "target") cmp_text(got.target);
    else if (want_cmd && k == "action") cmp_text(got.action);
    else if (!want_cmd && k == "state") cmp_text(got.state);
    else if (!want_cmd && k == "severity") cmp_text(got.severity);
    else if (!want_cmd && k == "summary") cmp_text(got.summary);
    else if (want_cmd && k == "params") {
      std::string e, g;
      YamlJson(kv.second.IsNull() ? YAML::Node(YAML::NodeType::Map) : kv.second, &e);
      std::vector<std::pair<std::string, std::string>> m;
      for (const auto& p : got.params) m.emplace_back(p.name, ParamJson(p.value));
      std::sort(m.begin(), m.end());
      g = "{";
      for (size_t i = 0; i < m.size(); ++i) {
        if (i) g += ", ";
        codec::AppendJsonString(&g, m[i].first);
        g += ": " + m[i].second;
      }
      g += "}";
      if (e != g) diffs->push_back("params: expected " + e + ", got " + g);
    } else if (!want_cmd && k == "labels") {
      std::string e, g;
      YamlJson(kv.second.IsNull() ? YAML::Node(YAML::NodeType::Map) : kv.second, &e);
      std::vector<std::pair<std::string, std::string>> m(got.labels.begin(), got.labels.end());
      std::sort(m.begin(), m.end());
      g = "{";
      for (size_t i = 0; i < m.size(); ++i) {
        if (i) g += ", ";
        codec::AppendJsonString(&g, m[i].first);
        g += ": ";
        codec::AppendJsonString(&g, m[i].second);
      }
      g += "}";
      if (e != g) diffs->push_back("labels: expected " + e + ", got " + g);
    } else {
      diffs->push_back("unknown field '" + k + "' in expected " + (want_cmd ? "command" : "alert"));
    }
  }
}

struct Totals {
  int passed = 0, failed = 0;
};

void RunFile(const std::string& path, bool verbose, Totals* tot) {
  // The whole file is read as a const node: yaml-cpp's non-const operator[] may insert keys.
  auto fail_file = [&](const std::string& msg) {
    std::printf("FAIL %s: %s\n", path.c_str(), msg.c_str());
    tot->failed++;
  };
  YAML::Node loaded;
  try {
    loaded = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail_file("line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
    return;
  }
  const YAML::Node& root = loaded;
  if (!root.IsMap()) return fail_file("a test file is a map with `rules:` and `tests:`");
  if (!root["tests"])
    return fail_file("not a test file: no `tests:` list (a rules file? give `vigie test` the test "
                     "files, e.g. config/rules/tests/)");
  static const std::set<std::string> kTop = {"rules", "start", "timezone", "location", "tests"};
  for (const auto& kv : root)
    if (!kTop.count(kv.first.Scalar()))
      return fail_file(Place(path, kv.first) + ": unknown key '" + kv.first.Scalar() + "'");
  fs::path dir = fs::path(path).parent_path();
  std::vector<std::string> rule_paths;
  YAML::Node rn = root["rules"];
  if (!rn) return fail_file("no `rules:` (the rule files or directories to test, relative to this file)");
  auto add_path = [&](const std::string& p) {
    fs::path fp(p);
    rule_paths.push_back(fp.is_absolute() ? p : (dir / fp).lexically_normal().string());
  };
  if (rn.IsSequence()) {
    for (const auto& p : rn) {
      if (!p.IsScalar()) return fail_file(Place(path, p) + ": `rules:` lists paths of rule files or directories");
      add_path(p.Scalar());
    }
  } else if (rn.IsScalar()) {
    add_path(rn.Scalar());
  } else {
    return fail_file(Place(path, rn) + ": `rules:` lists paths of rule files or directories");
  }
  TimeBase tb;
  std::string err;
  if (root["start"] && !ParseAt(root["start"], tb, &tb.start, &err)) return fail_file(Place(path, root["start"]) + ": " + err);
  std::string tzname = root["timezone"] ? root["timezone"].Scalar() : "Europe/Paris";
  auto tz = LoadTimeZone(tzname, &err);
  if (!tz) return fail_file(err);
  rules::Location loc;
  if (root["location"]) {
    try {
      loc.lat = root["location"]["lat"].as<double>();
      loc.lon = root["location"]["lon"].as<double>();
    } catch (...) {
      return fail_file(Place(path, root["location"]) + ": location must be {lat: N, lon: N}");
    }
  }
  std::vector<rules::RuleSource> sources;
  std::vector<rules::LoadError> lerrs;
  ReadRuleSources(rule_paths, &sources, &lerrs);
  std::shared_ptr<const rules::RuleSet> rs;
  if (lerrs.empty()) rs = rules::CompileRules(sources, &lerrs);
  if (!rs) {
    std::string m = "rules do not load:";
    for (const auto& e : lerrs) m += "\n    " + e.ToString();
    return fail_file(m);
  }
  YAML::Node tests = root["tests"];
  if (!tests || !tests.IsSequence()) return fail_file("`tests:` must be a list");
  for (const auto& t : tests) {
    std::string name = t["name"] ? t["name"].Scalar() : ("test at line " + std::to_string(t.Mark().line + 1));
    std::vector<std::string> problems;
    Collect sink;
    rules::ReplayDriver driver(rs, tz.get(), loc, &sink);
    for (const auto& kv : t) {
      static const std::set<std::string> kKeys = {"name", "events", "until", "expect"};
      if (!kKeys.count(kv.first.Scalar()))
        problems.push_back(Place(path, kv.first) + ": unknown key '" + kv.first.Scalar() + "' in test");
    }
    if (t["events"] && t["events"].IsSequence()) {
      for (const auto& en : t["events"]) {
        if (!en.IsMap()) {
          problems.push_back(Place(path, en) + ": an event is a map");
          continue;
        }
        rules::Event ev;
        if (en["at"]) {
          if (!ParseAt(en["at"], tb, &ev.ts_ms, &err)) {
            problems.push_back(Place(path, en) + ": " + err);
            continue;
          }
          ev.has_ts = true;
        }
        YAML::Node members(YAML::NodeType::Map);
        for (const auto& kv : en)
          if (kv.first.Scalar() != "at") members[kv.first.Scalar()] = kv.second;
        FlattenInto("", members, &ev);
        if (ev.kind.empty()) {
          problems.push_back(Place(path, en) + ": event has no kind");
          continue;
        }
        if (!driver.Feed(ev, &err)) problems.push_back(Place(path, en) + ": " + err);
      }
    }
    std::optional<int64_t> until;
    if (t["until"]) {
      int64_t u;
      if (ParseAt(t["until"], tb, &u, &err)) until = u;
      else problems.push_back(Place(path, t["until"]) + ": " + err);
    }
    driver.Finish(until);
    std::vector<YAML::Node> expected;
    if (t["expect"] && t["expect"].IsSequence())
      for (const auto& e : t["expect"]) expected.push_back(e);
    size_t n = std::max(expected.size(), sink.outs.size());
    std::vector<std::string> lines;
    for (size_t i = 0; i < n; ++i) {
      if (i >= sink.outs.size()) {
        lines.push_back("  output " + std::to_string(i + 1) + ": missing; expected (" + Place(path, expected[i]) + ") " + YAML::Dump(expected[i]));
        continue;
      }
      if (i >= expected.size()) {
        lines.push_back("  output " + std::to_string(i + 1) + ": unexpected: " + Describe(sink.outs[i]));
        continue;
      }
      std::vector<std::string> diffs;
      Compare(expected[i], tb, sink.outs[i], &diffs);
      if (!diffs.empty()) {
        std::string l = "  output " + std::to_string(i + 1) + " (expected at " + Place(path, expected[i]) + "):";
        for (const auto& d : diffs) l += "\n      " + d;
        l += "\n      got: " + Describe(sink.outs[i]);
        lines.push_back(l);
      }
    }
    if (problems.empty() && lines.empty()) {
      tot->passed++;
      if (verbose) std::printf("ok   %s: %s\n", path.c_str(), name.c_str());
    } else {
      tot->failed++;
      std::printf("FAIL %s: %s\n", path.c_str(), name.c_str());
      for (const auto& p : problems) std::printf("  %s\n", p.c_str());
      for (const auto& l : lines) std::printf("%s\n", l.c_str());
      if (!lines.empty()) {
        std::printf("  all outputs:\n");
        for (const auto& o : sink.outs) std::printf("    %s\n", Describe(o).c_str());
      }
    }
  }
}

}  // namespace

int RunTests(const std::vector<std::string>& paths, bool verbose) {
  Totals tot;
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> in_dir;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml") && e.path().filename().string()[0] != '.')
          in_dir.push_back(e.path().string());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.push_back(p);
    }
  }
  for (const auto& f : files) {
    if (!fs::exists(f)) {
      std::printf("FAIL %s: cannot read: No such file or directory\n", f.c_str());
      tot.failed++;
      continue;
    }
    RunFile(f, verbose, &tot);
  }
  std::printf("%d passed, %d failed\n", tot.passed, tot.failed);
  return tot.failed ? 1 : 0;
}

}  // namespace vigie::daemon
