#include "daemon/config/config.h"

// GCC 12 reports false -Wdangling-pointer warnings inside yaml-cpp 0.7's node/impl.h templates.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "rules/expr.h"

namespace vigie::daemon {

std::string ConfigError::ToString() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + message;
}

bool SplitHostPort(std::string_view text, std::string* host, int* port) {
  std::string_view h, p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
  }
  if (h.empty() || p.empty() || p.size() > 5) return false;
  int v = 0;
  auto r = std::from_chars(p.data(), p.data() + p.size(), v);
  if (r.ec != std::errc() || r.ptr != p.data() + p.size() || v < 0 || v > 65535) return false;
  *host = std::string(h);
  *port = v;
  return true;
}

namespace {

class Parser {
 public:
  Parser(const std::string& file, Config* out, std::vector<ConfigError>* errors)
      : file_(file), out_(out), errors_(errors) {}

  bool Run(std::string_view text);

 private:
  void Error(const YAML::Node& at, std::string message) { ErrorAt(at.Mark(), std::move(message)); }
  void ErrorAt(const YAML::Mark& m, std::string message) {
    ConfigError e;
    e.file = file_;
    e.line = m.is_null() ? 1 : m.line + 1;
    e.col = m.is_null() ? 1 : m.column + 1;
    e.message = std::move(message);
    errors_->push_back(std::move(e));
    ok_ = false;
  }

  // Iterates a map, reporting non-scalar and duplicate keys; calls fn(key, key_node, value).
  template <typename Fn>
  void ForEachKey(const YAML::Node& map, Fn fn) {
    std::set<std::string> seen;
    // Range-for keeps the (temporary) key/value pair alive for the body; `it->first` through the
    // iterator's arrow proxy would dangle (ASan: stack-use-after-scope).
    for (const auto& kv : map) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) {
        Error(k, "a key must be a plain string");
        continue;
      }
      const std::string& name = k.Scalar();
      if (!seen.insert(name).second) {
        Error(k, "duplicate key '" + name + "'");
        continue;
      }
      fn(name, k, kv.second);
    }
  }

  // Where to report a value: its own mark, or its key's when the value has none (empty values).
  // An empty value ("rules:") is placed by yaml-cpp after the key, often on the next line.
  const YAML::Node& At(const YAML::Node& value, const YAML::Node& key) {
    return value.Mark().is_null() || value.IsNull() ? key : value;
  }

  bool String(const YAML::Node& key, const YAML::Node& v, std::string* out, bool allow_empty) {
    if (!v.IsScalar()) {
      Error(At(v, key), "'" + key.Scalar() + "' must be a string");
      return false;
    }
    if (!allow_empty && v.Scalar().empty()) {
      Error(At(v, key), "'" + key.Scalar() + "' must not be empty");
      return false;
    }
    *out = v.Scalar();
    return true;
  }

  bool Int(const YAML::Node& key, const YAML::Node& v, int64_t lo, int64_t hi, int64_t* out) {
    std::string what = "'" + key.Scalar() + "' must be an integer from " + std::to_string(lo) +
                       " to " + std::to_string(hi);
    if (!v.IsScalar()) {
      Error(At(v, key), what);
      return false;
    }
    const std::string& s = v.Scalar();
    long long x = 0;
    auto r = std::from_chars(s.data(), s.data() + s.size(), x);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || x < lo || x > hi) {
      Error(v, what + ", not '" + s + "'");
      return false;
    }
    *out = x;
    return true;
  }

  bool Number(const YAML::Node& key, const YAML::Node& v, double lo, double hi, double* out) {
    char range[96];
    snprintf(range, sizeof range, "'%s' must be a number from %g to %g", key.Scalar().c_str(), lo,
             hi);
    if (!v.IsScalar()) {
      Error(At(v, key), range);
      return false;
    }
    const std::string& s = v.Scalar();
    char* end = nullptr;
    errno = 0;
    double x = s.empty() ? NAN : strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || errno != 0 || !std::isfinite(x) || x < lo ||
        x > hi) {
      Error(v, std::string(range) + ", not '" + s + "'");
      return false;
    }
    *out = x;
    return true;
  }

  bool Duration(const YAML::Node& key, const YAML::Node& v, bool allow_zero, int64_t* out) {
    if (!v.IsScalar()) {
      Error(At(v, key), "'" + key.Scalar() + "' must be a duration such as 1s or 500ms");
      return false;
    }
    const std::string& s = v.Scalar();
    if (allow_zero && s == "0") {
      *out = 0;
      return true;
    }
    std::string err;
    int64_t ms = 0;
    if (!rules::ParseDuration(s, &ms, &err)) {
      Error(v, "'" + key.Scalar() + "': " + err);
      return false;
    }
    if (ms <= 0 && !allow_zero) {
      Error(v, "'" + key.Scalar() + "' must be longer than 0");
      return false;
    }
    *out = ms;
    return true;
  }

  bool Plugin(const YAML::Node& key, const YAML::Node& v, const std::string& what,
              PluginSpec* out) {
    if (!v.IsMap()) {
      Error(At(v, key), what + " must be a map with a 'type'");
      return false;
    }
    const YAML::Node type = v["type"];  // const lookup: inserts nothing
    if (!type) {
      Error(v, what + " has no 'type'");
      return false;
    }
    if (!type.IsScalar() || type.Scalar().empty()) {
      Error(At(type, v), what + ": 'type' must be a non-empty string");
      return false;
    }
    out->type = type.Scalar();
    out->node = v;
    out->line = v.Mark().line + 1;
    out->col = v.Mark().column + 1;
    return true;
  }

  void Location(const YAML::Node& key, const YAML::Node& v) {
    if (!v.IsMap()) {
      Error(At(v, key), "'location' must be a map {lat: ..., lon: ...}");
      return;
    }
    ForEachKey(v, [&](const std::string& name, const YAML::Node& k, const YAML::Node& val) {
      if (name == "lat") Number(k, val, -90, 90, &out_->location.lat);
      else if (name == "lon") Number(k, val, -180, 180, &out_->location.lon);
      else Error(k, "unknown key 'location." + name + "' (expected lat, lon)");
    });
  }

  void Sources(const YAML::Node& key, const YAML::Node& v) {
    have_sources_ = true;
    if (!v.IsSequence()) {
      Error(At(v, key), "'sources' must be a list of sources");
      return;
    }
    if (v.size() == 0) {
      Error(At(v, key), "'sources' must list at least one source");
      return;
    }
    int i = 0;
    for (const YAML::Node& item : v) {
      PluginSpec spec;
      if (Plugin(key, item, "source " + std::to_string(i), &spec)) {
        out_->sources.push_back(std::move(spec));
      }
      ++i;
    }
  }

  void Sinks(const YAML::Node& key, const YAML::Node& v) {
    have_sinks_ = true;
    if (!v.IsMap()) {
      Error(At(v, key), "'sinks' must be a map {commands: ..., alerts: ...}");
      return;
    }
    bool commands = false, alerts = false;
    ForEachKey(v, [&](const std::string& name, const YAML::Node& k, const YAML::Node& val) {
      if (name == "commands") {
        commands = true;
        Plugin(k, val, "sink 'commands'", &out_->commands_sink);
      } else if (name == "alerts") {
        alerts = true;
        Plugin(k, val, "sink 'alerts'", &out_->alerts_sink);
      } else {
        Error(k, "unknown key 'sinks." + name + "' (expected commands, alerts)");
      }
    });
    if (!commands) Error(At(v, key), "missing sink 'commands'");
    if (!alerts) Error(At(v, key), "missing sink 'alerts'");
  }

  void Http(const YAML::Node& key, const YAML::Node& v) {
    if (!v.IsMap()) {
      Error(At(v, key), "'http' must be a map {listen: \"host:port\"}");
      return;
    }
    ForEachKey(v, [&](const std::string& name, const YAML::Node& k, const YAML::Node& val) {
      if (name != "listen") {
        Error(k, "unknown key 'http." + name + "' (expected listen)");
        return;
      }
      std::string s;
      if (!String(k, val, &s, /*allow_empty=*/true)) return;
      std::string host;
      int port = 0;
      if (!s.empty() && !SplitHostPort(s, &host, &port)) {
        Error(val, "'http.listen' must be \"host:port\" (or \"\" to disable), not '" + s + "'");
        return;
      }
      out_->http_listen = s;
      out_->http_line = val.Mark().line + 1;
      out_->http_col = val.Mark().column + 1;
    });
  }

  void Top(const std::string& name, const YAML::Node& k, const YAML::Node& v) {
    int64_t i = 0;
    if (name == "rules") {
      String(k, v, &out_->rules, false);
    } else if (name == "state_dir") {
      String(k, v, &out_->state_dir, false);
    } else if (name == "shards") {
      if (Int(k, v, 0, 64, &i)) out_->shards = static_cast<int>(i);
    } else if (name == "checkpoint_interval") {
      Duration(k, v, false, &out_->checkpoint_interval_ms);
    } else if (name == "timezone") {
      String(k, v, &out_->timezone, false);
    } else if (name == "location") {
      Location(k, v);
    } else if (name == "max_message_bytes") {
      if (Int(k, v, 1, int64_t{1} << 30, &i)) out_->max_message_bytes = static_cast<size_t>(i);
    } else if (name == "sources") {
      Sources(k, v);
    } else if (name == "sinks") {
      Sinks(k, v);
    } else if (name == "http") {
      Http(k, v);
    } else if (name == "queue_capacity") {
      if (Int(k, v, 1, int64_t{1} << 26, &i)) out_->queue_capacity = static_cast<size_t>(i);
    } else if (name == "state_write_mib_per_s") {
      if (Int(k, v, 0, int64_t{1} << 20, &i)) out_->state_write_mib_per_s = i;
    } else if (name == "idle_evict") {
      Duration(k, v, true, &out_->idle_evict_ms);
    } else if (name == "lateness") {
      Duration(k, v, true, &out_->lateness_ms);
      if (out_->lateness_ms > 60000) Error(v, "'lateness' must be at most 1m");
    } else if (name == "log_level") {
      std::string s;
      if (String(k, v, &s, false)) {
        if (s == "debug" || s == "info" || s == "warn" || s == "error") {
          out_->log_level = s;
        } else {
          Error(v, "'log_level' must be debug, info, warn or error, not '" + s + "'");
        }
      }
    } else {
      Error(k, "unknown key '" + name + "'");
    }
  }

  const std::string& file_;
  Config* out_;
  std::vector<ConfigError>* errors_;
  bool ok_ = true;
  bool have_sources_ = false;
  bool have_sinks_ = false;
};

bool Parser::Run(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    ErrorAt(e.mark, e.msg.empty() ? std::string("invalid YAML") : e.msg);
    return false;
  }
  out_->file = file_;
  try {
    if (root.IsNull()) {
      // An empty document: every key takes its default; the required ones are reported below.
    } else if (!root.IsMap()) {
      Error(root, "the configuration must be a map of keys");
      return false;
    } else {
      ForEachKey(root, [&](const std::string& name, const YAML::Node& k, const YAML::Node& v) {
        Top(name, k, v);
      });
    }
  } catch (const YAML::Exception& e) {  // not expected: every access above checks its type
    ErrorAt(e.mark, e.msg);
    return false;
  }
  if (!have_sources_) ErrorAt(YAML::Mark::null_mark(), "missing required key 'sources'");
  if (!have_sinks_) ErrorAt(YAML::Mark::null_mark(), "missing required key 'sinks'");
  return ok_;
}

}  // namespace

bool ParseConfig(std::string_view yaml_text, const std::string& file, Config* out,
                 std::vector<ConfigError>* errors) {
  Parser p(file, out, errors);
  return p.Run(yaml_text);
}

bool LoadConfigFile(const std::string& path, Config* out, std::vector<ConfigError>* errors) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    errors->push_back(ConfigError{path, 0, 0, std::string("cannot read: ") + strerror(errno)});
    return false;
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  bool failed = ferror(f) != 0;
  fclose(f);
  if (failed) {
    errors->push_back(ConfigError{path, 0, 0, "cannot read: I/O error"});
    return false;
  }
  return ParseConfig(text, path, out, errors);
}

}  // namespace vigie::daemon
