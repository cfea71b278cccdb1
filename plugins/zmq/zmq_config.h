#pragma once
// Validated configuration of the ZeroMQ source and sink (see README.md for the YAML keys).
// Parsed once, from the plugin's YAML map, by the factories; plain data afterwards.
#include <cstdint>
#include <string>
#include <vector>

#include "plugins/api/factory.h"

namespace vigie::plugins::zmq_plugin {

struct ZmqSourceConfig {
  enum class Socket { kPull, kSub };
  Socket socket = Socket::kPull;         // socket: pull | sub
  std::string endpoint;                  // bind: or connect: (tcp://, ipc://, inproc://)
  bool bind = true;                      // true: bind, false: connect
  std::vector<std::string> subscribe;    // sub only; empty = everything
  std::string name;                      // default "zmq:<endpoint>"
  int rcvhwm = 1000;  // messages queued in ZeroMQ before senders block/drop (ZeroMQ's default)
};

struct ZmqSinkConfig {
  enum class Socket { kPub, kPush };
  enum class Format { kJson, kFlatbuffers };
  Socket socket = Socket::kPub;          // socket: pub | push
  std::string endpoint;
  bool bind = true;
  Format format = Format::kJson;         // format: json | flatbuffers
  int sndhwm = 100000;                   // outputs queued per peer
  // push only: how long Send may wait for a slow consumer (queue at sndhwm) before the output is
  // dropped and counted. 0 = never wait.
  int64_t send_timeout_ms = 5000;
  std::string name;                      // default "zmq:<endpoint>"
};

// Both return false (with errors appended, 1-based line/col of the offending key or value) if
// anything is wrong.
bool ParseSourceConfig(const YAML::Node& cfg, ZmqSourceConfig* out,
                       std::vector<ConfigError>* errors);
bool ParseSinkConfig(const YAML::Node& cfg, ZmqSinkConfig* out, std::vector<ConfigError>* errors);

// "tcp://host:port" (port may be *), "ipc://path", "inproc://name". On failure *why says what.
bool ValidEndpoint(const std::string& endpoint, std::string* why);

// "5s", "250ms", "1m", "0" -> milliseconds.
bool ParseDurationMs(const std::string& text, int64_t* ms);

}  // namespace vigie::plugins::zmq_plugin
