#include "plugins/zmq/zmq_context.h"

namespace vigie::plugins::zmq_plugin {

zmq::context_t& Context() {
  static zmq::context_t* const ctx = new zmq::context_t(1);  // intentionally leaked, see header
  return *ctx;
}

}  // namespace vigie::plugins::zmq_plugin
