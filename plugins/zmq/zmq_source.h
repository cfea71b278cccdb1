#pragma once
// ZmqSource: a ZeroMQ PULL or SUB socket feeding the pipeline.
//
// Start() opens and binds/connects the socket on the caller's thread (so "address in use" is an
// error there) and starts the receive thread, which owns the socket from then on. That thread
// polls (100 ms, to notice Stop), drains up to 1024 messages or 8192 events at a time, decodes
// them (JSON or FlatBuffers by the first bytes, codec::MessageDecoder) into one recycled
// rules::EventBuffer and hands it to EventConsumer::Consume, then Clear()s it (its slots keep
// their buffers: no event is allocated per message). Consume blocks while the shards are full,
// so the socket's queue fills and ZeroMQ pushes back on PUSH senders (PUB senders drop at their
// high-water mark). If Consume returns false the thread ends. A SUB message may be one frame
// (payload) or two (topic, payload): the last frame is the payload.
//
// Stats are written by the receive thread only. Start/Stop from one control thread; Stop is
// idempotent and called by the destructor.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "plugins/api/factory.h"
#include "plugins/codec/message_decoder.h"
#include "plugins/zmq/zmq_config.h"

namespace vigie::plugins::zmq_plugin {

class ZmqSource final : public Source {
 public:
  ZmqSource(ZmqSourceConfig cfg, const SourceContext& ctx);
  ~ZmqSource() override;

  const std::string& name() const override { return cfg_.name; }
  bool Start(std::string* error) override;
  void Stop() override;
  const SourceStats& stats() const override { return stats_; }

  // The endpoint actually bound (e.g. with the port chosen for tcp://127.0.0.1:*); valid after
  // a successful Start.
  const std::string& last_endpoint() const { return last_endpoint_; }

 private:
  void Run();
  void Log(LogLevel level, const std::string& msg) const;

  const ZmqSourceConfig cfg_;
  SourceContext ctx_;
  SourceStats stats_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::string last_endpoint_;
};

}  // namespace vigie::plugins::zmq_plugin
