// YAML -> RuleSet. Every problem is reported with FILE:LINE:COLUMN; a file with any problem
// rejects the whole load (the caller keeps its previous rules).
#include "rules/loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "rules/rule.h"

namespace vigie::rules {

std::string LoadError::ToString() const {
  std::string s = file;
  if (line > 0) {
    s += ":" + std::to_string(line) + ":" + std::to_string(col);
  }
  s += ": " + message;
  return s;
}

uint64_t Fnv1a(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

template <typename GetField>
bool BuildKey(size_t n, GetField get, std::string* key, std::vector<Value>* values) {
  key->clear();
  if (values) values->clear();
  for (size_t i = 0; i < n; ++i) {
    Value v = get(i);
    if (v.missing()) return false;
    if (i) key->push_back('/');
    AppendText(key, v);
    if (values) values->push_back(v);
  }
  return true;
}

}  // namespace

bool BuildGroupKey(const std::vector<std::string>& group_by, const Event& ev, std::string* key,
                   std::vector<Value>* values) {
  return BuildKey(group_by.size(), [&](size_t i) { return ev.Get(group_by[i]); }, key, values);
}

bool BuildGroupKey(const std::vector<std::string>& group_by, const std::vector<uint32_t>& ids,
                   const EventFields& ev, std::string* key, std::vector<Value>* values) {
  return BuildKey(group_by.size(), [&](size_t i) { return ev.Get(ids[i], group_by[i]); }, key,
                  values);
}

void RuleSet::Match(std::string_view kind, std::vector<uint32_t>* out) const {
  out->clear();
  auto it = by_kind.find(kind);
  if (it != by_kind.end()) out->insert(out->end(), it->second.begin(), it->second.end());
  bool added = false;
  for (const auto& [prefix, idx] : by_prefix) {
    if (kind.size() >= prefix.size() && kind.compare(0, prefix.size(), prefix) == 0) {
      out->push_back(idx);
      added = true;
    }
  }
  if (added) {
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end()), out->end());
  }
}

int RuleSet::FindRule(std::string_view name) const {
  auto it = by_name.find(std::string(name));
  return it == by_name.end() ? -1 : it->second;
}

void RuleSet::Finish() {
  by_kind.clear();
  by_prefix.clear();
  by_name.clear();
  groupsets.clear();
  groupset_fields.clear();
  fields = FieldNames();
  for (uint32_t i = 0; i < rules.size(); ++i) {
    Rule& r = rules[i];
    by_name[r.info.name] = static_cast<int>(i);
    r.window_layout =
        r.kind == RuleKind::kWindowed ? WindowLayout(r.window, r.agg_funcs) : WindowLayout();
    for (const auto& k : r.on_exact) {
      auto& v = by_kind[k];
      if (v.empty() || v.back() != i) v.push_back(i);
    }
    for (const auto& p : r.on_prefix) by_prefix.emplace_back(p, i);
    auto gs = std::find(groupsets.begin(), groupsets.end(), r.group_by);
    if (gs == groupsets.end()) {
      groupsets.push_back(r.group_by);
      r.groupset = static_cast<int>(groupsets.size() - 1);
    } else {
      r.groupset = static_cast<int>(gs - groupsets.begin());
    }
    for (const ExprPtr* e : {&r.where, &r.where_rest, &r.when, &r.clear_when})
      if (*e) BindEventFields(**e, &fields);
    for (const ExprPtr& e : r.lets) BindEventFields(*e, &fields);
    for (const AggSlot& a : r.aggs)
      if (a.arg) BindEventFields(*a.arg, &fields);
  }
  for (const auto& gs : groupsets) {
    auto& ids = groupset_fields.emplace_back();
    for (const std::string& name : gs) ids.push_back(fields.Intern(name));
  }
  index.Build(rules, &fields);
}

size_t RuleCount(const RuleSet& rs) { return rs.rules.size(); }
const RuleInfo& GetRuleInfo(const RuleSet& rs, size_t i) { return rs.rules[i].info; }
size_t RuleFileCount(const RuleSet& rs) { return rs.file_count; }

namespace {

constexpr uint64_t kFnvBasis = 1469598103934665603ull;

struct Loader {
  const RuleSource* src = nullptr;
  std::vector<LoadError>* errors = nullptr;
  std::vector<std::string> lines;  // source lines (for placing expression errors)

  void Error(const YAML::Mark& m, std::string msg) {
    LoadError e;
    e.file = src->file;
    e.line = m.line + 1;
    e.col = m.column + 1;
    e.message = std::move(msg);
    errors->push_back(std::move(e));
  }
  void ErrorAt(int line, int col, std::string msg) {
    LoadError e;
    e.file = src->file;
    e.line = line;
    e.col = col;
    e.message = std::move(msg);
    errors->push_back(std::move(e));
  }

  // Maps a position inside a scalar's text to the file. Handles plain and quoted one-line
  // scalars exactly and block scalars (| and >) line by line.
  void ExprError(const YAML::Node& node, const Diag& d) {
    const YAML::Mark m = node.Mark();
    int line0 = m.line;  // 0-based
    int col0 = m.column;
    char first = 0;
    if (line0 >= 0 && static_cast<size_t>(line0) < lines.size() && col0 >= 0 &&
        static_cast<size_t>(col0) < lines[line0].size())
      first = lines[line0][col0];
    if (first == '|' || first == '>') {
      int target = line0 + d.line;  // content starts on the next line
      int indent = 0;
      if (static_cast<size_t>(target) < lines.size()) {
        const std::string& l = lines[target];
        while (static_cast<size_t>(indent) < l.size() && l[indent] == ' ') ++indent;
      }
      ErrorAt(target + 1, indent + d.col, d.message);
      return;
    }
    int quote = (first == '"' || first == '\'') ? 1 : 0;
    if (d.line <= 1) {
      ErrorAt(line0 + 1, col0 + 1 + quote + d.col - 1, d.message);
    } else {
      // A multi-line flow scalar: place it on the right line, column approximate.
      ErrorAt(line0 + d.line, d.col, d.message);
    }
  }

  bool Text(const YAML::Node& n, const char* what, std::string* out) {
    if (!n.IsScalar()) {
      Error(n.Mark(), std::string(what) + " must be text, not a " +
                          (n.IsMap() ? "map" : n.IsSequence() ? "list" : "null value"));
      return false;
    }
    *out = n.Scalar();
    return true;
  }

  bool Duration(const YAML::Node& n, const char* what, int64_t* ms) {
    std::string t;
    if (!Text(n, what, &t)) return false;
    std::string err;
    if (!ParseDuration(t, ms, &err)) {
      Error(n.Mark(), std::string("bad duration for ") + what + ": " + err);
      return false;
    }
    if (*ms <= 0) {
      Error(n.Mark(), std::string(what) + " must be longer than 0");
      return false;
    }
    return true;
  }

  ExprPtr Compile(const YAML::Node& n, const char* what, const CompileEnv& env,
                  std::string* text_out) {
    std::string text;
    if (!Text(n, what, &text)) return nullptr;
    if (text_out) *text_out = text;
    std::vector<Diag> diags;
    ExprPtr e = CompileExpr(text, env, &diags);
    if (!e) {
      if (diags.empty()) diags.push_back({1, 1, "invalid expression"});
      for (const Diag& d : diags) ExprError(n, Diag{d.line, d.col, std::string(what) + ": " + d.message});
    }
    return e;
  }

  // A template problem at byte `offset` of the scalar's text, placed like an expression error.
  void TemplateError(const YAML::Node& n, const std::string& text, size_t offset, std::string msg) {
    Diag d;
    d.message = std::move(msg);
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++d.line;
        d.col = 1;
      } else {
        ++d.col;
      }
    }
    ExprError(n, d);
  }

  // Parses a template; names are resolved against the rule.
  bool ParseTemplate(const YAML::Node& n, const std::string& text, const Rule& rule,
                     Template* out) {
    out->parts.clear();
    std::string lit;
    auto flush = [&] {
      if (!lit.empty()) {
        Template::Part p;
        p.text = lit;
        out->parts.push_back(std::move(p));
        lit.clear();
      }
    };
    for (size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c == '{') {
        if (i + 1 < text.size() && text[i + 1] == '{') {
          lit.push_back('{');
          ++i;
          continue;
        }
        size_t close = text.find('}', i + 1);
        if (close == std::string::npos) {
          TemplateError(n, text, i, "unclosed '{' in template \"" + text + "\" (write '{{' for a literal brace)");
          return false;
        }
        std::string name = text.substr(i + 1, close - i - 1);
        // trim
        while (!name.empty() && name.front() == ' ') name.erase(name.begin());
        while (!name.empty() && name.back() == ' ') name.pop_back();
        if (name.empty()) {
          TemplateError(n, text, i, "empty '{}' in template \"" + text + "\"");
          return false;
        }
        flush();
        Template::Part p;
        if (!ResolveTemplateName(n, text, i, name, rule, &p)) return false;
        out->parts.push_back(std::move(p));
        i = close;
      } else if (c == '}') {
        if (i + 1 < text.size() && text[i + 1] == '}') {
          lit.push_back('}');
          ++i;
          continue;
        }
        TemplateError(n, text, i, "unmatched '}' in template \"" + text + "\" (write '}}' for a literal brace)");
        return false;
      } else {
        lit.push_back(c);
      }
    }
    flush();
    return true;
  }

  bool ResolveTemplateName(const YAML::Node& n, const std::string& text, size_t offset,
                           const std::string& name, const Rule& rule, Template::Part* p) {
    for (size_t g = 0; g < rule.group_by.size(); ++g) {
      if (rule.group_by[g] == name) {
        p->kind = Template::Part::Kind::kGroup;
        p->index = static_cast<int>(g);
        return true;
      }
    }
    for (size_t l = 0; l < rule.let_names.size(); ++l) {
      if (rule.let_names[l] == name) {
        p->kind = Template::Part::Kind::kLet;
        p->index = static_cast<int>(l);
        return true;
      }
    }
    if (name == "rule") {
      p->kind = Template::Part::Kind::kRule;
      return true;
    }
    if (name == "key") {
      p->kind = Template::Part::Kind::kKey;
      return true;
    }
    if (rule.kind != RuleKind::kStateless) {
      std::string allowed;
      for (const auto& g : rule.group_by) allowed += "{" + g + "}, ";
      for (const auto& l : rule.let_names) allowed += "{" + l + "}, ";
      allowed += "{rule}, {key}";
      TemplateError(n, text, offset, "template name '{" + name + "}' cannot resolve: in " +
                          (rule.kind == RuleKind::kAbsence ? std::string("absence")
                                                           : std::string("windowed")) +
                          " rules an activation may have no triggering event, so only group_by "
                          "fields, let names, {rule} and {key} are allowed (here: " +
                          allowed + ")");
      return false;
    }
    p->kind = Template::Part::Kind::kEvent;
    p->text = name;
    return true;
  }

  // A YAML scalar as a typed parameter (YAML 1.2 core schema for plain scalars).
  void TypedScalar(const YAML::Node& n, ParamValue* v, bool* is_template_string) {
    *is_template_string = false;
    const std::string& s = n.Scalar();
    bool plain = n.Tag() == "?" || n.Tag().empty();
    if (plain) {
      if (s == "true" || s == "True" || s == "TRUE") {
        v->kind = ParamValue::Kind::kBool;
        v->b = true;
        return;
      }
      if (s == "false" || s == "False" || s == "FALSE") {
        v->kind = ParamValue::Kind::kBool;
        v->b = false;
        return;
      }
      if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
        v->kind = ParamValue::Kind::kNull;
        return;
      }
      double d;
      if (ParseYamlNumber(s, &d)) {
        v->kind = ParamValue::Kind::kNumber;
        v->num = d;
        return;
      }
    }
    v->kind = ParamValue::Kind::kString;
    v->str = s;
    *is_template_string = true;
  }

  static bool ParseYamlNumber(const std::string& s, double* out) {
    // [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ | [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    // | [-+]?\.(inf|Inf|INF) | \.nan
    if (s.empty()) return false;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
      int base = s[1] == 'x' ? 16 : 8;
      double v = 0;
      for (size_t i = 2; i < s.size(); ++i) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return false;
        if (d >= base) return false;
        v = v * base + d;
      }
      *out = v;
      return true;
    }
    size_t i = 0;
    if (s[i] == '+' || s[i] == '-') ++i;
    std::string rest = s.substr(i);
    if (rest == ".inf" || rest == ".Inf" || rest == ".INF") {
      *out = s[0] == '-' ? -INFINITY : INFINITY;
      return true;
    }
    if (i == 0 && (s == ".nan" || s == ".NaN" || s == ".NAN")) {
      *out = NAN;
      return true;
    }
    size_t digits = 0, frac = 0;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac;
    }
    if (digits == 0 && frac == 0) return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
      size_t ed = 0;
      while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i, ++ed;
      if (ed == 0) return false;
    }
    if (i != s.size()) return false;
    *out = std::strtod(s.c_str(), nullptr);
    return true;
  }

  // Renders any YAML node as JSON (nested params), expanding nothing.
  static void NodeJson(const YAML::Node& n, std::string* out) {
    if (n.IsMap()) {
      out->push_back('{');
      bool first = true;
      for (const auto& kv : n) {
        if (!first) out->append(", ");
        first = false;
        JsonString(kv.first.Scalar(), out);
        out->append(": ");
        NodeJson(kv.second, out);
      }
      out->push_back('}');
    } else if (n.IsSequence()) {
      out->push_back('[');
      bool first = true;
      for (const auto& e : n) {
        if (!first) out->append(", ");
        first = false;
        NodeJson(e, out);
      }
      out->push_back(']');
    } else if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      bool plain = n.Tag() == "?" || n.Tag().empty();
      double d;
      if (plain && (s == "true" || s == "True" || s == "TRUE")) out->append("true");
      else if (plain && (s == "false" || s == "False" || s == "FALSE")) out->append("false");
      else if (plain && (s == "~" || s == "null" || s == "Null" || s == "NULL")) out->append("null");
      else if (plain && ParseYamlNumber(s, &d) && std::isfinite(d)) AppendNumber(out, d);
      else JsonString(s, out);
    } else {
      out->append("null");
    }
  }

  static void JsonString(const std::string& s, std::string* out) {
    out->push_back('"');
    for (unsigned char c : s) {
      switch (c) {
        case '"': out->append("\\\""); break;
        case '\\': out->append("\\\\"); break;
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        default:
          if (c < 0x20) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\u%04x", c);
            out->append(buf);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
    }
    out->push_back('"');
  }

  bool ParseAction(const YAML::Node& n, const Rule& rule, ActionSpec* a) {
    if (!n.IsMap() || n.size() != 1) {
      Error(n.Mark(), "an action is a map with one key, `command` or `alert`");
      return false;
    }
    auto kv = *n.begin();
    std::string type = kv.first.Scalar();
    const YAML::Node& body = kv.second;
    if (type != "command" && type != "alert") {
      Error(kv.first.Mark(), "unknown action '" + type + "' (expected `command` or `alert`)");
      return false;
    }
    if (!body.IsMap()) {
      Error(body.Mark(), type + " must be a map");
      return false;
    }
    bool ok = true;
    if (type == "command") {
      a->type = OutputType::kCommand;
      bool has_target = false, has_action = false;
      for (const auto& p : body) {
        std::string key = p.first.Scalar();
        if (key == "target" || key == "action") {
          std::string t;
          if (!Text(p.second, key.c_str(), &t)) {
            ok = false;
            continue;
          }
          ok &= ParseTemplate(p.second, t, rule, key == "target" ? &a->target : &a->action);
          (key == "target" ? has_target : has_action) = true;
          continue;
        }
        ParamSpec ps;
        ps.name = key;
        if (p.second.IsScalar()) {
          bool is_tmpl;
          TypedScalar(p.second, &ps.constant, &is_tmpl);
          if (is_tmpl) ok &= ParseTemplate(p.second, ps.constant.str, rule, &ps.text);
        } else if (p.second.IsMap() || p.second.IsSequence()) {
          ps.constant.kind = ParamValue::Kind::kJson;
          NodeJson(p.second, &ps.constant.str);
        } else {
          ps.constant.kind = ParamValue::Kind::kNull;
        }
        a->params.push_back(std::move(ps));
      }
      if (!has_target) {
        Error(body.Mark(), "command needs a `target`");
        ok = false;
      }
      if (!has_action) {
        Error(body.Mark(), "command needs an `action`");
        ok = false;
      }
    } else {
      a->type = OutputType::kAlert;
      bool has_sev = false, has_sum = false;
      for (const auto& p : body) {
        std::string key = p.first.Scalar();
        if (key == "severity") {
          std::string s;
          if (!Text(p.second, "severity", &s)) {
            ok = false;
          } else if (s != "info" && s != "warning" && s != "critical") {
            Error(p.second.Mark(), "severity must be info, warning or critical, not '" + s + "'");
            ok = false;
          } else {
            a->severity = s;
            has_sev = true;
          }
        } else if (key == "summary") {
          std::string s;
          if (!Text(p.second, "summary", &s)) ok = false;
          else ok &= ParseTemplate(p.second, s, rule, &a->summary);
          has_sum = true;
        } else if (key == "labels") {
          if (p.second.IsNull()) continue;
          if (!p.second.IsMap()) {
            Error(p.second.Mark(), "labels must be a map of name: template");
            ok = false;
            continue;
          }
          for (const auto& l : p.second) {
            std::string v;
            if (!Text(l.second, "a label value", &v)) {
              ok = false;
              continue;
            }
            Template t;
            if (ParseTemplate(l.second, v, rule, &t)) a->labels.emplace_back(l.first.Scalar(), std::move(t));
            else ok = false;
          }
        } else {
          Error(p.first.Mark(), "unknown key '" + key + "' in alert (expected severity, summary, labels)");
          ok = false;
        }
      }
      if (!has_sev) {
        Error(body.Mark(), "alert needs a `severity` (info, warning or critical)");
        ok = false;
      }
      if (!has_sum) {
        Error(body.Mark(), "alert needs a `summary`");
        ok = false;
      }
    }
    return ok;
  }

  bool ParseActions(const YAML::Node& n, const char* what, const Rule& rule,
                    std::vector<ActionSpec>* out) {
    if (!n.IsDefined() || n.IsNull()) return true;
    if (!n.IsSequence()) {
      Error(n.Mark(), std::string(what) + " must be a list of actions");
      return false;
    }
    bool ok = true;
    for (const auto& a : n) {
      ActionSpec spec;
      if (ParseAction(a, rule, &spec)) out->push_back(std::move(spec));
      else ok = false;
    }
    return ok;
  }

  static bool ValidName(const std::string& s) {
    if (s.empty()) return false;
    auto ok0 = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!ok0(s[0])) return false;
    for (char c : s)
      if (!ok0(c) && c != '.' && c != '_' && c != '-') return false;
    return true;
  }

  static bool ValidIdent(const std::string& s) {
    if (s.empty()) return false;
    if (!(isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
    for (char c : s)
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
    static const std::set<std::string> kw = {"and", "or", "not", "in", "true", "false"};
    return !kw.count(s);
  }

  bool ParseRule(const YAML::Node& n, Rule* r) {
    if (!n.IsMap()) {
      Error(n.Mark(), "a rule must be a map (name, on, when, then ...)");
      return false;
    }
    static const std::set<std::string> kKeys = {
        "name", "description", "on", "where", "group_by", "window", "let", "when",
        "for", "clear_when", "then", "otherwise", "absent_for", "resolution"};
    bool ok = true;
    // Default-constructed yaml-cpp nodes are defined (null); start from Undefined ones.
    const YAML::Node undef(YAML::NodeType::Undefined);
    YAML::Node name_n(undef), desc_n(undef), on_n(undef), where_n(undef), group_n(undef),
        window_n(undef), let_n(undef), when_n(undef), for_n(undef), clear_n(undef),
        then_n(undef), otherwise_n(undef), absent_n(undef), res_n(undef);
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        Error(kv.first.Mark(), "rule keys must be text");
        ok = false;
        continue;
      }
      const std::string k = kv.first.Scalar();
      if (!kKeys.count(k)) {
        Error(kv.first.Mark(), "unknown key '" + k + "' in rule (expected one of: name, description, on, "
                               "where, group_by, window, let, when, for, clear_when, then, otherwise, absent_for)");
        ok = false;
        continue;
      }
      YAML::Node* slot = k == "name" ? &name_n : k == "description" ? &desc_n : k == "on" ? &on_n
                       : k == "where" ? &where_n : k == "group_by" ? &group_n : k == "window" ? &window_n
                       : k == "let" ? &let_n : k == "when" ? &when_n : k == "for" ? &for_n
                       : k == "clear_when" ? &clear_n : k == "then" ? &then_n
                       : k == "otherwise" ? &otherwise_n : k == "absent_for" ? &absent_n : &res_n;
      if (slot->IsDefined()) {
        Error(kv.first.Mark(), "duplicate key '" + k + "'");
        ok = false;
      }
      slot->reset(kv.second);  // reset, not operator= (which would write through the node)
    }
    r->info.file = src->file;
    r->info.line = n.Mark().line + 1;
    if (!name_n.IsDefined()) {
      Error(n.Mark(), "rule has no `name`");
      ok = false;
    } else if (Text(name_n, "name", &r->info.name)) {
      if (!ValidName(r->info.name)) {
        Error(name_n.Mark(), "bad rule name '" + r->info.name + "': use [a-z0-9][a-z0-9._-]*");
        ok = false;
      }
    } else {
      ok = false;
    }
    std::string canon;  // state-relevant definition, for the fingerprint
    if (desc_n.IsDefined() && !desc_n.IsNull()) ok &= Text(desc_n, "description", &r->info.description);

    // on
    if (!on_n.IsDefined() || on_n.IsNull()) {
      Error(n.Mark(), "rule '" + r->info.name + "' has no `on` (an event kind or a list of kinds)");
      ok = false;
    } else {
      std::vector<YAML::Node> kinds;
      if (on_n.IsSequence()) {
        for (const auto& k : on_n) kinds.push_back(k);
        if (kinds.empty()) {
          Error(on_n.Mark(), "`on` must list at least one event kind");
          ok = false;
        }
      } else {
        kinds.push_back(on_n);
      }
      for (const auto& k : kinds) {
        std::string s;
        if (!Text(k, "an event kind", &s)) {
          ok = false;
          continue;
        }
        if (s.empty()) {
          Error(k.Mark(), "empty event kind");
          ok = false;
          continue;
        }
        if (s.back() == '*') r->on_prefix.push_back(s.substr(0, s.size() - 1));
        else r->on_exact.push_back(s);
        canon += "on:" + s + "\n";
      }
    }

    // group_by
    if (group_n.IsDefined() && !group_n.IsNull()) {
      std::vector<YAML::Node> gs;
      if (group_n.IsSequence()) for (const auto& g : group_n) gs.push_back(g);
      else gs.push_back(group_n);
      for (const auto& g : gs) {
        std::string s;
        if (!Text(g, "a group_by field", &s)) {
          ok = false;
          continue;
        }
        if (s.empty()) {
          Error(g.Mark(), "empty group_by field");
          ok = false;
          continue;
        }
        if (std::find(r->group_by.begin(), r->group_by.end(), s) != r->group_by.end()) {
          Error(g.Mark(), "group_by field '" + s + "' listed twice");
          ok = false;
          continue;
        }
        r->group_by.push_back(s);
      }
      if (gs.empty()) {
        Error(group_n.Mark(), "group_by must name at least one field");
        ok = false;
      }
    }
    if (r->group_by.empty()) r->group_by.push_back("device");
    for (const auto& g : r->group_by) canon += "group:" + g + "\n";

    // kind of rule
    bool windowed = window_n.IsDefined() && !window_n.IsNull();
    bool absence = absent_n.IsDefined() && !absent_n.IsNull();
    if (absence) {
      r->kind = RuleKind::kAbsence;
      if (windowed) {
        Error(window_n.Mark(), "`absent_for` cannot be used together with `window`");
        ok = false;
      }
      if (when_n.IsDefined()) {
        Error(when_n.Mark(), "`absent_for` cannot be used together with `when` (an absence rule activates when no matching event came for the duration)");
        ok = false;
      }
      if (let_n.IsDefined()) {
        Error(let_n.Mark(), "`let` cannot be used in an absence rule (`absent_for`)");
        ok = false;
      }
      if (for_n.IsDefined()) {
        Error(for_n.Mark(), "`for` cannot be used in an absence rule: `absent_for` already is the duration");
        ok = false;
      }
      if (clear_n.IsDefined()) {
        Error(clear_n.Mark(), "`clear_when` cannot be used in an absence rule: its next matching event deactivates it");
        ok = false;
      }
      if (Duration(absent_n, "absent_for", &r->absent_for_ms)) canon += "absent_for:" + std::to_string(r->absent_for_ms) + "\n";
      else ok = false;
    } else if (windowed) {
      r->kind = RuleKind::kWindowed;
      ok &= ParseWindow(window_n, res_n, r);
      canon += "window:" + std::to_string(static_cast<int>(r->window.kind)) + ":" +
               std::to_string(r->window.duration_ms) + ":" + std::to_string(r->window.count) + ":" +
               std::to_string(r->window.resolution_ms) + "\n";
    } else {
      r->kind = RuleKind::kStateless;
      if (res_n.IsDefined()) {
        Error(res_n.Mark(), "`resolution` only applies to sliding windows");
        ok = false;
      }
    }
    r->info.kind = absence ? "absence"
                 : !windowed ? "stateless"
                 : r->window.kind == WindowSpec::Kind::kSliding ? "sliding"
                 : r->window.kind == WindowSpec::Kind::kTumbling ? "tumbling"
                 : r->window.kind == WindowSpec::Kind::kSession ? "session" : "count";

    // where: event fields only.
    if (where_n.IsDefined() && !where_n.IsNull()) {
      CompileEnv env;
      std::string t;
      r->where = Compile(where_n, "where", env, &t);
      if (!r->where) ok = false;
      else r->where_rest_ok = ResidualAfterLeadingTest(*r->where, &r->where_rest);
      canon += "where:" + t + "\n";
    }

    // let
    bool stateful_names = r->kind != RuleKind::kStateless;
    if (let_n.IsDefined() && !let_n.IsNull()) {
      if (!let_n.IsMap()) {
        Error(let_n.Mark(), "`let` must be a map of name: expression");
        ok = false;
      } else {
        for (const auto& kv : let_n) {
          std::string lname = kv.first.Scalar();
          if (!ValidIdent(lname)) {
            Error(kv.first.Mark(), "bad let name '" + lname + "': use a plain identifier");
            ok = false;
            continue;
          }
          if (std::find(r->let_names.begin(), r->let_names.end(), lname) != r->let_names.end()) {
            Error(kv.first.Mark(), "let name '" + lname + "' defined twice");
            ok = false;
            continue;
          }
          CompileEnv env;
          env.lets = r->let_names;  // earlier lets only
          if (stateful_names) env.group_fields = r->group_by;
          env.aggregates_allowed = r->kind == RuleKind::kWindowed;
          env.aggregates = &r->aggs;
          std::string t;
          ExprPtr e = Compile(kv.second, ("let " + lname).c_str(), env, &t);
          if (!e) ok = false;
          r->let_names.push_back(lname);
          r->lets.push_back(std::move(e));
          canon += "let:" + lname + "=" + t + "\n";
        }
      }
    }

    // when / clear_when
    auto cond_env = [&] {
      CompileEnv env;
      env.lets = r->let_names;
      if (stateful_names) env.group_fields = r->group_by;
      env.aggregates_allowed = r->kind == RuleKind::kWindowed;
      env.aggregates = &r->aggs;
      return env;
    };
    if (!absence) {
      if (!when_n.IsDefined() || when_n.IsNull()) {
        Error(n.Mark(), "rule '" + r->info.name + "' has no `when` (required unless `absent_for` is given)");
        ok = false;
      } else {
        std::string t;
        r->when = Compile(when_n, "when", cond_env(), &t);
        if (!r->when) ok = false;
        canon += "when:" + t + "\n";
      }
      if (clear_n.IsDefined() && !clear_n.IsNull()) {
        std::string t;
        r->clear_when = Compile(clear_n, "clear_when", cond_env(), &t);
        if (!r->clear_when) ok = false;
        canon += "clear_when:" + t + "\n";
      }
      if (for_n.IsDefined() && !for_n.IsNull()) {
        if (Duration(for_n, "for", &r->for_ms)) canon += "for:" + std::to_string(r->for_ms) + "\n";
        else ok = false;
      }
    }
    for (auto& a : r->aggs) r->agg_funcs.push_back(a.func);

    // actions
    ok &= ParseActions(then_n, "then", *r, &r->then);
    ok &= ParseActions(otherwise_n, "otherwise", *r, &r->otherwise);
    // INTERFACES.md: a rule whose definition changed starts fresh on reload. Only the
    // description is left out of the fingerprint (editing prose must not reset state).
    if (then_n.IsDefined()) canon += "then:" + YAML::Dump(then_n) + "\n";
    if (otherwise_n.IsDefined()) canon += "otherwise:" + YAML::Dump(otherwise_n) + "\n";

    if (ok) {
      r->reads_clock = (r->when && ReadsClock(*r->when)) || (r->clear_when && ReadsClock(*r->clear_when));
      for (const auto& l : r->lets) r->reads_clock |= l && ReadsClock(*l);
      r->keep_last_event = r->kind == RuleKind::kStateless && r->for_ms > 0;
      r->info.fingerprint = Fnv1a(canon, kFnvBasis);
    }
    return ok;
  }

  bool ParseWindow(const YAML::Node& w, const YAML::Node& rule_res, Rule* r) {
    if (!w.IsMap()) {
      Error(w.Mark(), "window must be a map: {sliding: D}, {tumbling: D}, {session: D} or {count: N}");
      return false;
    }
    bool ok = true;
    int kinds = 0;
    YAML::Node res = rule_res;
    for (const auto& kv : w) {
      std::string k = kv.first.Scalar();
      if (k == "sliding" || k == "tumbling" || k == "session") {
        ++kinds;
        r->window.kind = k == "sliding" ? WindowSpec::Kind::kSliding
                       : k == "tumbling" ? WindowSpec::Kind::kTumbling : WindowSpec::Kind::kSession;
        ok &= Duration(kv.second, k.c_str(), &r->window.duration_ms);
      } else if (k == "count") {
        ++kinds;
        r->window.kind = WindowSpec::Kind::kCount;
        std::string t;
        if (!Text(kv.second, "count", &t)) {
          ok = false;
          continue;
        }
        char* end = nullptr;
        long long v = std::strtoll(t.c_str(), &end, 10);
        if (t.empty() || *end != 0 || v < 1) {
          Error(kv.second.Mark(), "count window size must be a whole number >= 1, not '" + t + "'");
          ok = false;
        } else if (v > kMaxCountWindow) {
          Error(kv.second.Mark(), "count window size " + t + " is over the limit of " +
                                      std::to_string(kMaxCountWindow) + " events");
          ok = false;
        } else {
          r->window.count = v;
        }
      } else if (k == "resolution") {
        if (res.IsDefined()) {
          Error(kv.first.Mark(), "`resolution` given twice");
          ok = false;
        }
        res.reset(kv.second);
      } else {
        Error(kv.first.Mark(), "unknown window kind '" + k + "' (expected sliding, tumbling, session or count)");
        ok = false;
      }
    }
    if (kinds != 1 && ok) {
      Error(w.Mark(), kinds == 0 ? "window needs one of sliding, tumbling, session or count"
                                 : "window must have exactly one of sliding, tumbling, session or count");
      ok = false;
    }
    if (res.IsDefined() && !res.IsNull()) {
      if (r->window.kind != WindowSpec::Kind::kSliding) {
        Error(res.Mark(), "`resolution` only applies to sliding windows");
        ok = false;
      } else if (Duration(res, "resolution", &r->window.resolution_ms)) {
        if (r->window.duration_ms > 0 && r->window.resolution_ms > r->window.duration_ms) {
          Error(res.Mark(), "resolution is longer than the window");
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (ok && r->window.kind == WindowSpec::Kind::kSliding && r->window.resolution_ms == 0)
      r->window.resolution_ms = DefaultResolution(r->window.duration_ms);
    return ok;
  }
};

void SplitLines(const std::string& text, std::vector<std::string>* lines) {
  std::string cur;
  for (char c : text) {
    if (c == '\n') {
      lines->push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  lines->push_back(cur);
}

}  // namespace

std::shared_ptr<const RuleSet> CompileRules(const std::vector<RuleSource>& sources,
                                            std::vector<LoadError>* errors) {
  auto rs = std::make_shared<RuleSet>();
  rs->file_count = sources.size();
  size_t errors_before = errors->size();
  struct Seen {
    std::string file;
    int line;
  };
  std::unordered_map<std::string, Seen> names;
  for (const RuleSource& src : sources) {
    Loader L;
    L.src = &src;
    L.errors = errors;
    SplitLines(src.text, &L.lines);
    YAML::Node root;
    try {
      root = YAML::Load(src.text);
    } catch (const YAML::Exception& e) {
      LoadError le;
      le.file = src.file;
      le.line = e.mark.line + 1;
      le.col = e.mark.column + 1;
      le.message = "YAML syntax: " + e.msg;
      if (e.mark.line < 0) le.line = le.col = 1;
      errors->push_back(std::move(le));
      continue;
    }
    try {
      if (!root.IsDefined() || root.IsNull()) {
        L.ErrorAt(1, 1, "empty rules file (expected a top-level `rules:` list)");
        continue;
      }
      if (!root.IsMap()) {
        L.Error(root.Mark(), "a rules file is a map with one key, `rules:`");
        continue;
      }
      YAML::Node list(YAML::NodeType::Undefined);
      for (const auto& kv : root) {
        std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
        if (k == "rules") list.reset(kv.second);
        else L.Error(kv.first.Mark(), "unknown top-level key '" + k + "' (a rules file has one key, `rules:`)");
      }
      if (!list.IsDefined()) {
        L.Error(root.Mark(), "no `rules:` list in this file");
        continue;
      }
      if (list.IsNull()) continue;  // `rules:` with nothing: an empty file of rules
      if (!list.IsSequence()) {
        L.Error(list.Mark(), "`rules:` must be a list of rules");
        continue;
      }
      for (const auto& rn : list) {
        Rule r;
        if (!L.ParseRule(rn, &r)) continue;
        auto it = names.find(r.info.name);
        if (it != names.end()) {
          YAML::Node nn = rn["name"];
          L.Error(nn.Mark(), "duplicate rule name '" + r.info.name + "' (first defined at " +
                                 it->second.file + ":" + std::to_string(it->second.line) + ")");
          continue;
        }
        names[r.info.name] = Seen{src.file, r.info.line};
        rs->rules.push_back(std::move(r));
      }
    } catch (const YAML::Exception& e) {
      LoadError le;
      le.file = src.file;
      le.line = e.mark.line + 1;
      le.col = e.mark.column + 1;
      le.message = e.msg;
      errors->push_back(std::move(le));
    }
  }
  if (errors->size() != errors_before) return nullptr;
  rs->Finish();
  return rs;
}

}  // namespace vigie::rules
