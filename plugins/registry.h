#pragma once
// The table of built-in plugins: the ONE place where every source and sink type is registered
// (as in Fluent Bit's plugin list). Because the daemon calls these functions, the linker keeps
// every built-in; a new connector (mqtt, nats ...) adds one line to registry.cc.
//
// Immutable after static initialisation; thread-safe.
#include <string_view>
#include <vector>

#include "plugins/api/factory.h"

namespace vigie::plugins {

// Null if no plugin has that type.
const SourceFactory* FindSourceFactory(std::string_view type);
const SinkFactory* FindSinkFactory(std::string_view type);

// Known type names, in registration order (for "unknown type 'x' (known: zmq)" messages).
std::vector<std::string_view> SourceTypes();
std::vector<std::string_view> SinkTypes();

}  // namespace vigie::plugins
