#include "plugins/zmq/zmq_plugin.h"

#include <yaml-cpp/yaml.h>

#include "plugins/zmq/zmq_sink.h"
#include "plugins/zmq/zmq_source.h"

namespace vigie::plugins::zmq_plugin {
namespace {

class SourceFactoryImpl final : public SourceFactory {
 public:
  std::string_view type() const override { return "zmq"; }
  std::unique_ptr<Source> Create(const YAML::Node& cfg, const SourceContext& ctx,
                                 std::vector<ConfigError>* errors) const override {
    try {
      ZmqSourceConfig c;
      if (!ParseSourceConfig(cfg, &c, errors)) return nullptr;
      if (ctx.consumer == nullptr) {
        errors->push_back({0, 0, "internal: zmq source created without an event consumer"});
        return nullptr;
      }
      return std::make_unique<ZmqSource>(std::move(c), ctx);
    } catch (const std::exception& e) {  // yaml-cpp on an invalid node
      errors->push_back({0, 0, std::string("zmq source: ") + e.what()});
      return nullptr;
    }
  }
};

class SinkFactoryImpl final : public SinkFactory {
 public:
  std::string_view type() const override { return "zmq"; }
  std::unique_ptr<Sink> Create(const YAML::Node& cfg, const SinkContext& ctx,
                               std::vector<ConfigError>* errors) const override {
    try {
      ZmqSinkConfig c;
      if (!ParseSinkConfig(cfg, &c, errors)) return nullptr;
      return std::make_unique<ZmqSink>(std::move(c), ctx);
    } catch (const std::exception& e) {
      errors->push_back({0, 0, std::string("zmq sink: ") + e.what()});
      return nullptr;
    }
  }
};

}  // namespace

const SourceFactory& ZmqSourceFactory() {
  static const SourceFactoryImpl f;
  return f;
}

const SinkFactory& ZmqSinkFactory() {
  static const SinkFactoryImpl f;
  return f;
}

}  // namespace vigie::plugins::zmq_plugin
