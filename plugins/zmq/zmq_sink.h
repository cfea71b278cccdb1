#pragma once
// ZmqSink: commands or alerts out on a ZeroMQ PUB or PUSH socket, as two frames: the topic
// (codec::OutputTopic) then the payload (JSON or FlatBuffers, codec/output_codec.h).
//
// PUB never blocks: at the high-water mark (sndhwm, per subscriber) ZeroMQ drops silently; a
// send it refuses is counted as dropped. PUSH waits for a slow consumer up to send_timeout, then
// the output is dropped and counted (with no consumer connected at all, every Send waits the
// whole send_timeout: keep it short for push sinks that may be unattended).
//
// Threading: Start/Stop from the control thread, Send only from the output dispatcher thread,
// never concurrently with Start/Stop. Send reuses its topic/payload/builder buffers: no
// allocation per output once warmed up. Stats written by the dispatcher thread.
#include <memory>
#include <string>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "plugins/api/factory.h"
#include "plugins/zmq/zmq_config.h"

namespace vigie::plugins::zmq_plugin {

class ZmqSink final : public Sink {
 public:
  ZmqSink(ZmqSinkConfig cfg, const SinkContext& ctx);
  ~ZmqSink() override;

  const std::string& name() const override { return cfg_.name; }
  bool Start(std::string* error) override;
  void Send(const rules::Output& out) override;
  void Stop() override;
  const SinkStats& stats() const override { return stats_; }

  const std::string& last_endpoint() const { return last_endpoint_; }

 private:
  void Log(LogLevel level, const std::string& msg) const;

  const ZmqSinkConfig cfg_;
  SinkContext ctx_;
  SinkStats stats_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::string last_endpoint_;
  std::string topic_;
  std::string json_;
  flatbuffers::FlatBufferBuilder fbb_{1024};
  bool error_logged_ = false;
  // push only: a send timed out, i.e. the consumer took nothing for send_timeout. Until a send
  // gets through again, sends do not wait: one absent consumer costs the dispatcher (and so the
  // shards behind it) one send_timeout per outage, not one per output.
  bool consumer_gone_ = false;
};

}  // namespace vigie::plugins::zmq_plugin
