#include "plugins/zmq/zmq_sink.h"

#include "plugins/codec/output_codec.h"
#include "plugins/zmq/zmq_context.h"

namespace vigie::plugins::zmq_plugin {

ZmqSink::ZmqSink(ZmqSinkConfig cfg, const SinkContext& ctx) : cfg_(std::move(cfg)), ctx_(ctx) {}

ZmqSink::~ZmqSink() { Stop(); }

void ZmqSink::Log(LogLevel level, const std::string& msg) const {
  if (ctx_.log) ctx_.log(level, msg);
}

bool ZmqSink::Start(std::string* error) {
  if (socket_ != nullptr) {
    *error = cfg_.name + ": already started";
    return false;
  }
  try {
    const bool push = cfg_.socket == ZmqSinkConfig::Socket::kPush;
    auto s = std::make_unique<zmq::socket_t>(
        Context(), push ? zmq::socket_type::push : zmq::socket_type::pub);
    s->set(zmq::sockopt::sndhwm, cfg_.sndhwm);
    // On Stop, give queued outputs up to a second to leave.
    s->set(zmq::sockopt::linger, 1000);
    if (push) {
      s->set(zmq::sockopt::sndtimeo, static_cast<int>(std::min<int64_t>(cfg_.send_timeout_ms,
                                                                          INT32_MAX)));
    }
    last_endpoint_ = Attach(*s, cfg_.bind, cfg_.endpoint);
    socket_ = std::move(s);
  } catch (const zmq::error_t& e) {
    *error = AttachError(cfg_.name, cfg_.bind, cfg_.endpoint, e);
    return false;
  }
  Log(LogLevel::kInfo, cfg_.name + ": sending on " + last_endpoint_);
  return true;
}

void ZmqSink::Send(const rules::Output& out) {
  if (socket_ == nullptr) {
    stats_.dropped.store(stats_.dropped.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    return;
  }
  codec::OutputTopic(out, &topic_);
  zmq::const_buffer payload;
  if (cfg_.format == ZmqSinkConfig::Format::kJson) {
    codec::EncodeOutputJson(out, &json_);
    payload = zmq::const_buffer(json_.data(), json_.size());
  } else {
    codec::EncodeOutputFlatbuffers(out, &fbb_);
    payload = zmq::const_buffer(fbb_.GetBufferPointer(), fbb_.GetSize());
  }
  // PUB: never wait. PUSH: wait up to sndtimeo (set on the socket) for room in the queue,
  // unless the last send already waited that long for nothing (consumer_gone_).
  const bool push = cfg_.socket == ZmqSinkConfig::Socket::kPush;
  const zmq::send_flags wait =
      !push || consumer_gone_ ? zmq::send_flags::dontwait : zmq::send_flags::none;
  bool ok = false;
  try {
    // The frames of a message go together: once the first is accepted the second cannot block.
    ok = socket_->send(zmq::const_buffer(topic_.data(), topic_.size()),
                       wait | zmq::send_flags::sndmore)
             .has_value() &&
         socket_->send(payload, wait).has_value();
  } catch (const zmq::error_t& e) {
    if (!error_logged_) {
      Log(LogLevel::kError, cfg_.name + ": send failed: " + e.what());
      error_logged_ = true;
    }
  }
  auto inc = [](std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  };
  if (ok) {
    inc(stats_.sent, 1);
    inc(stats_.bytes, topic_.size() + payload.size());
    if (consumer_gone_) {
      consumer_gone_ = false;
      Log(LogLevel::kInfo, cfg_.name + ": the consumer takes outputs again");
    }
  } else {
    inc(stats_.dropped, 1);
    if (push && !consumer_gone_ && cfg_.send_timeout_ms > 0) {
      consumer_gone_ = true;
      Log(LogLevel::kWarn, cfg_.name + ": no consumer took an output for " +
                               std::to_string(cfg_.send_timeout_ms) +
                               " ms; dropping outputs (vigie_sink_dropped_total) without waiting "
                               "until one is taken again");
    }
  }
}

void ZmqSink::Stop() {
  if (socket_ != nullptr) {
    socket_->close();
    socket_.reset();
  }
}

}  // namespace vigie::plugins::zmq_plugin
