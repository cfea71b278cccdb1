#pragma once
// The "zmq" source and sink factories (built in; registered in plugins/registry.cc).
// Config keys: see plugins/zmq/README.md and zmq_config.h.
#include "plugins/api/factory.h"

namespace vigie::plugins::zmq_plugin {

const SourceFactory& ZmqSourceFactory();
const SinkFactory& ZmqSinkFactory();

}  // namespace vigie::plugins::zmq_plugin
