#include "plugins/zmq/zmq_config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <string_view>

namespace vigie::plugins::zmq_plugin {
namespace {

void AddError(std::vector<ConfigError>* errors, const YAML::Node& at, std::string message) {
  const YAML::Mark m = at.Mark();
  ConfigError e;
  e.line = m.line >= 0 ? m.line + 1 : 0;
  e.col = m.column >= 0 ? m.column + 1 : 0;
  e.message = std::move(message);
  errors->push_back(std::move(e));
}

bool Scalar(const YAML::Node& n, std::string* out) {
  if (!n.IsScalar()) return false;
  *out = n.Scalar();
  return true;
}

// The keys of a plugin map, with their key nodes (for error places) and value nodes.
struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

bool Entries(const YAML::Node& cfg, std::vector<Entry>* out, std::vector<ConfigError>* errors) {
  if (!cfg.IsMap()) {
    AddError(errors, cfg, "expected a map of settings");
    return false;
  }
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    Entry e;
    if (!Scalar(it->first, &e.key)) {
      AddError(errors, it->first, "expected a key");
      continue;
    }
    e.key_node = it->first;
    e.value = it->second;
    out->push_back(std::move(e));
  }
  return true;
}

bool NonNegativeInt(const YAML::Node& v, int* out) {
  std::string s;
  if (!Scalar(v, &s)) return false;
  int x = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), x);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || x < 0) return false;
  *out = x;
  return true;
}

// Handles the keys shared by source and sink. Returns true if the key was one of them.
bool CommonKey(const Entry& e, std::string* endpoint, bool* bind, const YAML::Node** endpoint_at,
               std::string* name, std::vector<ConfigError>* errors) {
  if (e.key == "type") {
    std::string t;
    if (!Scalar(e.value, &t) || t != "zmq") AddError(errors, e.value, "type must be zmq");
    return true;
  }
  if (e.key == "bind" || e.key == "connect") {
    if (*endpoint_at != nullptr) {
      AddError(errors, e.key_node, "bind and connect are exclusive: give exactly one");
      return true;
    }
    *endpoint_at = &e.value;
    std::string why;
    if (!Scalar(e.value, endpoint)) {
      AddError(errors, e.value, e.key + " must be a ZeroMQ endpoint such as tcp://127.0.0.1:7001");
    } else if (!ValidEndpoint(*endpoint, &why)) {
      AddError(errors, e.value, "bad endpoint '" + *endpoint + "': " + why);
    }
    *bind = e.key == "bind";
    return true;
  }
  if (e.key == "name") {
    if (!Scalar(e.value, name) || name->empty()) AddError(errors, e.value, "name must be a string");
    return true;
  }
  return false;
}

}  // namespace

bool ValidEndpoint(const std::string& ep, std::string* why) {
  std::string_view s(ep);
  if (s.starts_with("ipc://")) {
    if (s.size() == 6) {
      *why = "empty ipc path";
      return false;
    }
    return true;
  }
  if (s.starts_with("inproc://")) {
    if (s.size() == 9) {
      *why = "empty inproc name";
      return false;
    }
    return true;
  }
  if (s.starts_with("tcp://")) {
    std::string_view rest = s.substr(6);
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      *why = "expected tcp://HOST:PORT";
      return false;
    }
    std::string_view port = rest.substr(colon + 1);
    if (port == "*") return true;
    int p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 0 ||
        p > 65535) {
      *why = "port must be 0..65535 or *";
      return false;
    }
    return true;
  }
  *why = "the scheme must be tcp://, ipc:// or inproc://";
  return false;
}

bool ParseDurationMs(const std::string& text, int64_t* ms) {
  int64_t n = 0;
  const char* end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, n);
  if (r.ec != std::errc() || n < 0) return false;
  std::string_view unit(r.ptr, static_cast<size_t>(end - r.ptr));
  int64_t mult;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60000;
  else if (unit.empty() && n == 0) mult = 0;
  else return false;
  if (n > INT64_MAX / 3600000) return false;
  *ms = n * mult;
  return true;
}

bool ParseSourceConfig(const YAML::Node& cfg, ZmqSourceConfig* out,
                       std::vector<ConfigError>* errors) {
  const size_t before = errors->size();
  std::vector<Entry> entries;
  if (!Entries(cfg, &entries, errors)) return false;
  *out = ZmqSourceConfig();
  const YAML::Node* endpoint_at = nullptr;
  const Entry* subscribe = nullptr;
  for (const Entry& e : entries) {
    if (CommonKey(e, &out->endpoint, &out->bind, &endpoint_at, &out->name, errors)) continue;
    if (e.key == "socket") {
      std::string s;
      Scalar(e.value, &s);
      if (s == "pull") out->socket = ZmqSourceConfig::Socket::kPull;
      else if (s == "sub") out->socket = ZmqSourceConfig::Socket::kSub;
      else AddError(errors, e.value, "socket must be pull or sub");
    } else if (e.key == "subscribe") {
      subscribe = &e;
    } else if (e.key == "rcvhwm") {
      if (!NonNegativeInt(e.value, &out->rcvhwm)) {
        AddError(errors, e.value, "rcvhwm must be a non-negative integer (messages)");
      }
    } else {
      AddError(errors, e.key_node,
               "unknown key '" + e.key +
                   "' for a zmq source (known: type, socket, bind, connect, subscribe, name, "
                   "rcvhwm)");
    }
  }
  if (subscribe != nullptr) {
    if (out->socket != ZmqSourceConfig::Socket::kSub) {
      AddError(errors, subscribe->key_node, "subscribe is only for socket: sub");
    } else if (!subscribe->value.IsSequence()) {
      AddError(errors, subscribe->value, "subscribe must be a list of topic prefixes");
    } else {
      for (const YAML::Node& p : subscribe->value) {
        std::string s;
        if (!Scalar(p, &s)) AddError(errors, p, "a topic prefix must be a string");
        else out->subscribe.push_back(std::move(s));
      }
    }
  }
  if (endpoint_at == nullptr) AddError(errors, cfg, "a zmq source needs bind or connect");
  if (out->name.empty()) out->name = "zmq:" + out->endpoint;
  return errors->size() == before;
}

bool ParseSinkConfig(const YAML::Node& cfg, ZmqSinkConfig* out, std::vector<ConfigError>* errors) {
  const size_t before = errors->size();
  std::vector<Entry> entries;
  if (!Entries(cfg, &entries, errors)) return false;
  *out = ZmqSinkConfig();
  const YAML::Node* endpoint_at = nullptr;
  const Entry* send_timeout = nullptr;
  for (const Entry& e : entries) {
    if (CommonKey(e, &out->endpoint, &out->bind, &endpoint_at, &out->name, errors)) continue;
    if (e.key == "socket") {
      std::string s;
      Scalar(e.value, &s);
      if (s == "pub") out->socket = ZmqSinkConfig::Socket::kPub;
      else if (s == "push") out->socket = ZmqSinkConfig::Socket::kPush;
      else AddError(errors, e.value, "socket must be pub or push");
    } else if (e.key == "format") {
      std::string s;
      Scalar(e.value, &s);
      if (s == "json") out->format = ZmqSinkConfig::Format::kJson;
      else if (s == "flatbuffers") out->format = ZmqSinkConfig::Format::kFlatbuffers;
      else AddError(errors, e.value, "format must be json or flatbuffers");
    } else if (e.key == "sndhwm") {
      if (!NonNegativeInt(e.value, &out->sndhwm)) {
        AddError(errors, e.value, "sndhwm must be a non-negative integer (messages)");
      }
    } else if (e.key == "send_timeout") {
      send_timeout = &e;
      std::string s;
      if (!Scalar(e.value, &s) || !ParseDurationMs(s, &out->send_timeout_ms)) {
        AddError(errors, e.value, "send_timeout must be a duration such as 500ms, 5s or 1m");
      }
    } else {
      AddError(errors, e.key_node,
               "unknown key '" + e.key +
                   "' for a zmq sink (known: type, socket, bind, connect, format, sndhwm, "
                   "send_timeout, name)");
    }
  }
  if (send_timeout != nullptr && out->socket != ZmqSinkConfig::Socket::kPush) {
    AddError(errors, send_timeout->key_node,
             "send_timeout is only for socket: push (a pub socket never waits)");
  }
  if (endpoint_at == nullptr) AddError(errors, cfg, "a zmq sink needs bind or connect");
  if (out->name.empty()) out->name = "zmq:" + out->endpoint;
  return errors->size() == before;
}

}  // namespace vigie::plugins::zmq_plugin
