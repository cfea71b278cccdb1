#pragma once
// Plugin factories: how the daemon builds sources and sinks from their YAML config without
// knowing their types (Envoy-style extension factories; built-ins are listed in
// plugins/registry.cc).
//
// A factory is a stateless, immutable object with a type name ("zmq"); it lives for the whole
// program and its methods may be called from any thread. Create() validates the plugin's config
// node completely (unknown keys, bad values) and either returns a ready-to-Start plugin or null
// with one ConfigError per problem, each at its place in the YAML file. It never throws and opens
// no socket (that is Start()'s job, so config errors are found before anything is bound).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plugins/api/sink.h"
#include "plugins/api/source.h"

namespace YAML {
class Node;
}

namespace vigie::plugins {

// A problem in a plugin's config. line/col are 1-based (yaml-cpp's Mark + 1); 0 when unknown.
// The caller prefixes the file name: "vigie.yaml:12:5: unknown key 'bnid'".
struct ConfigError {
  int line = 0;
  int col = 0;
  std::string message;
};

// What a source may use from the daemon: nothing else (no global config, no app object).
struct SourceContext {
  EventConsumer* consumer = nullptr;          // where decoded batches go; outlives the source
  Logger log;                                 // may be empty (then nothing is logged)
  size_t max_message_bytes = 4 * 1024 * 1024; // larger messages are rejected (oversize)
  std::function<int64_t()> wall_ms;           // ingest time for events without ts
  std::function<int64_t()> steady_ns;         // Event::ingest_ns, blocked time
};

struct SinkContext {
  Logger log;  // may be empty
};

class SourceFactory {
 public:
  virtual ~SourceFactory();
  virtual std::string_view type() const = 0;
  // cfg is the source's map (the one holding `type: ...`). Returns null iff errors were added.
  virtual std::unique_ptr<Source> Create(const YAML::Node& cfg, const SourceContext& ctx,
                                         std::vector<ConfigError>* errors) const = 0;
};

class SinkFactory {
 public:
  virtual ~SinkFactory();
  virtual std::string_view type() const = 0;
  // cfg is the sink's map. Returns null iff errors were added.
  virtual std::unique_ptr<Sink> Create(const YAML::Node& cfg, const SinkContext& ctx,
                                       std::vector<ConfigError>* errors) const = 0;
};

}  // namespace vigie::plugins
