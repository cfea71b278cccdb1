#include "plugins/registry.h"

#include "plugins/zmq/zmq_plugin.h"

namespace vigie::plugins {
namespace {

struct Builtin {
  const SourceFactory& (*source)();  // null if the plugin has no source
  const SinkFactory& (*sink)();      // null if the plugin has no sink
};

// Every built-in plugin, one line each.
constexpr Builtin kBuiltins[] = {
    {&zmq_plugin::ZmqSourceFactory, &zmq_plugin::ZmqSinkFactory},
};

}  // namespace

const SourceFactory* FindSourceFactory(std::string_view type) {
  for (const Builtin& b : kBuiltins) {
    if (b.source != nullptr && b.source().type() == type) return &b.source();
  }
  return nullptr;
}

const SinkFactory* FindSinkFactory(std::string_view type) {
  for (const Builtin& b : kBuiltins) {
    if (b.sink != nullptr && b.sink().type() == type) return &b.sink();
  }
  return nullptr;
}

std::vector<std::string_view> SourceTypes() {
  std::vector<std::string_view> v;
  for (const Builtin& b : kBuiltins) {
    if (b.source != nullptr) v.push_back(b.source().type());
  }
  return v;
}

std::vector<std::string_view> SinkTypes() {
  std::vector<std::string_view> v;
  for (const Builtin& b : kBuiltins) {
    if (b.sink != nullptr) v.push_back(b.sink().type());
  }
  return v;
}

}  // namespace vigie::plugins
