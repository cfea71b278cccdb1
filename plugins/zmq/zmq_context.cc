#include "plugins/zmq/zmq_context.h"

namespace vigie::plugins::zmq_plugin {

zmq::context_t& Context() {
  static zmq::context_t* const ctx = new zmq::context_t(1);  // intentionally leaked, see header
  return *ctx;
}

std::string Attach(zmq::socket_t& s, bool bind, const std::string& endpoint) {
  if (bind) {
    s.bind(endpoint);
  } else {
    s.connect(endpoint);
  }
  return s.get(zmq::sockopt::last_endpoint);
}

std::string AttachError(const std::string& name, bool bind, const std::string& endpoint,
                        const zmq::error_t& e) {
  return name + ": cannot " + (bind ? "bind " : "connect ") + endpoint + ": " + e.what();
}

}  // namespace vigie::plugins::zmq_plugin
