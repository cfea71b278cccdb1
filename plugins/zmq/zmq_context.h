#pragma once
// The process-wide ZeroMQ context shared by every zmq source and sink (one I/O thread).
// Created on first use, thread-safe, never destroyed: terminating a context blocks until every
// socket is closed, which must not hang process exit.
#include <string>

#include <zmq.hpp>

namespace vigie::plugins::zmq_plugin {

zmq::context_t& Context();

// Binds or connects `s` (one place for sources and sinks); returns the endpoint in effect
// ("tcp://127.0.0.1:*" resolved to its port). Throws zmq::error_t like cppzmq.
std::string Attach(zmq::socket_t& s, bool bind, const std::string& endpoint);
// "NAME: cannot bind ENDPOINT: reason" for a failed Attach or socket setup.
std::string AttachError(const std::string& name, bool bind, const std::string& endpoint,
                        const zmq::error_t& e);

}  // namespace vigie::plugins::zmq_plugin
