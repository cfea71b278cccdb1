#pragma once
// vigie.yaml -> plain validated structs (INTERFACES.md "Configuration"). Parsed once, at the
// edge, by the composition root; components get the fields they need, never the Config.
// Pure functions, no state: safe from any thread.
//
// Every unknown key, every bad value and YAML syntax errors are reported with their place
// (1-based line and column), all of them, not just the first.
//
// Keys accepted beyond the contract (INTERFACES.md):
//   queue_capacity: 65536   # events per shard queue (>= 1)
//   idle_evict: 0s          # a group idle this long with nothing pending is dropped; 0s = never
//   log_level: info         # debug | info | warn | error
//   http: {listen: ""}      # an empty listen address disables the admin server
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "rules/timezone.h"

namespace vigie::daemon {

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when there is no place
  int col = 0;
  std::string message;
  std::string ToString() const;  // "FILE:LINE:COLUMN: message" ("FILE: message" without a place)
};

// A source or sink as written: its `type` and the raw node, for the plugin factory to validate
// (it reports its own errors at node marks; line/col are where the spec starts, 1-based).
struct PluginSpec {
  std::string type;
  YAML::Node node;
  int line = 0;
  int col = 0;
};

struct Config {
  std::string file;                      // where it came from ("<embedded>" for the default)
  std::string rules = "config/rules";    // a rules directory or file (relative: to the cwd)
  std::string state_dir = "state";       // RocksDB lives here
  int shards = 0;                        // worker threads (0..64); 0 = one per core
  int64_t checkpoint_interval_ms = 1000; // checkpoint_interval: 1s  (> 0)
  std::string timezone = "Europe/Paris"; // a name of the tz database (validated when loaded)
  rules::Location location;              // location: {lat: 47.322, lon: 5.041}
  size_t max_message_bytes = 4194304;    // a larger message is rejected (>= 1)
  std::vector<PluginSpec> sources;       // required, at least one
  PluginSpec commands_sink;              // sinks: {commands: ..., alerts: ...}, both required
  PluginSpec alerts_sink;
  std::string http_listen = "127.0.0.1:9464";  // http: {listen: "host:port"}; "" = no server
  int http_line = 0, http_col = 0;       // where http.listen was written (0: the default)

  // Beyond the contract:
  size_t queue_capacity = 65536;         // events per shard queue
  // lateness: how far engine time stays behind the wall clock, so that an event stamped by its
  // sensor a little before it reaches the daemon is still placed at its own ts (and timers fire
  // this much later in wall time, with their own instants as ts). Default 250ms.
  int64_t lateness_ms = 250;
  int64_t idle_evict_ms = 0;             // idle_evict: groups idle this long are dropped; 0 = never
  int64_t state_write_mib_per_s = 64;    // RocksDB's flushes and compactions paced at this; 0 = no limit
  std::string log_level = "info";        // debug | info | warn | error
};

// Parses `yaml_text`; `file` names it in errors and in Config::file. Keys absent from the text
// keep their defaults (except sources and sinks, which are required). Returns false (with
// errors appended) if anything is wrong; *out is then unspecified.
bool ParseConfig(std::string_view yaml_text, const std::string& file, Config* out,
                 std::vector<ConfigError>* errors);
// Reads the file then ParseConfig. A file that cannot be read is one error without a place.
bool LoadConfigFile(const std::string& path, Config* out, std::vector<ConfigError>* errors);

// The text of config/vigie.yaml as it was at build time (embedded into the binary).
const char* DefaultConfigYaml();

// Splits "host:port" ("[::1]:9464" for IPv6). Port 0..65535; host non-empty. False if malformed.
bool SplitHostPort(std::string_view text, std::string* host, int* port);

}  // namespace vigie::daemon
