#pragma once
// The process-wide ZeroMQ context shared by every zmq source and sink (one I/O thread).
// Created on first use, thread-safe, never destroyed: terminating a context blocks until every
// socket is closed, which must not hang process exit.
#include <zmq.hpp>

namespace vigie::plugins::zmq_plugin {

zmq::context_t& Context();

}  // namespace vigie::plugins::zmq_plugin
