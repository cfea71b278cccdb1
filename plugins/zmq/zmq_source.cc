#include "plugins/zmq/zmq_source.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include "plugins/zmq/zmq_context.h"

namespace vigie::plugins::zmq_plugin {
namespace {

constexpr size_t kMaxMessagesPerDrain = 1024;
constexpr size_t kMaxEventsPerDrain = 8192;
constexpr auto kPollTimeout = std::chrono::milliseconds(100);

int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ZmqSource::ZmqSource(ZmqSourceConfig cfg, const SourceContext& ctx)
    : cfg_(std::move(cfg)), ctx_(ctx) {
  if (!ctx_.wall_ms) ctx_.wall_ms = SystemMs;
  if (!ctx_.steady_ns) ctx_.steady_ns = SteadyNs;
}

ZmqSource::~ZmqSource() { Stop(); }

void ZmqSource::Log(LogLevel level, const std::string& msg) const {
  if (ctx_.log) ctx_.log(level, msg);
}

bool ZmqSource::Start(std::string* error) {
  if (socket_ != nullptr) {
    *error = cfg_.name + ": already started";
    return false;
  }
  if (ctx_.consumer == nullptr) {
    *error = cfg_.name + ": no event consumer";
    return false;
  }
  try {
    const bool sub = cfg_.socket == ZmqSourceConfig::Socket::kSub;
    auto s = std::make_unique<zmq::socket_t>(
        Context(), sub ? zmq::socket_type::sub : zmq::socket_type::pull);
    s->set(zmq::sockopt::rcvhwm, cfg_.rcvhwm);
    s->set(zmq::sockopt::linger, 0);
    if (ctx_.max_message_bytes > 0 && ctx_.max_message_bytes < INT64_MAX) {
      // Let ZeroMQ refuse (and disconnect) peers sending absurdly large messages before they are
      // buffered; still well above the limit so that ordinary oversize ones are counted by us.
      s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(ctx_.max_message_bytes) * 4 + 4096);
    }
    if (sub) {
      if (cfg_.subscribe.empty()) {
        s->set(zmq::sockopt::subscribe, "");
      } else {
        for (const std::string& p : cfg_.subscribe) s->set(zmq::sockopt::subscribe, p);
      }
    }
    last_endpoint_ = Attach(*s, cfg_.bind, cfg_.endpoint);
    socket_ = std::move(s);
  } catch (const zmq::error_t& e) {
    *error = AttachError(cfg_.name, cfg_.bind, cfg_.endpoint, e);
    return false;
  }
  stop_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "vg-source");  // for top -H, perf and gdb
    Run();
  });
  Log(LogLevel::kInfo, cfg_.name + ": receiving on " + last_endpoint_);
  return true;
}

void ZmqSource::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (socket_ != nullptr) {
    socket_->close();
    socket_.reset();
  }
}

void ZmqSource::Run() {
  codec::MessageDecoder decoder(ctx_.max_message_bytes);
  // Recycled: after Consume() its slots hold spent events (swapped with the router's batches)
  // whose buffers the next messages are decoded into, so no event is allocated or freed here.
  rules::EventBuffer events;
  events.Reserve(kMaxEventsPerDrain);
  uint64_t rejected[static_cast<int>(RejectReason::kCount_)];
  zmq::message_t msg;
  zmq::socket_t& sock = *socket_;
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};

  while (!stop_.load(std::memory_order_acquire)) {
    try {
      if (zmq::poll(&item, 1, kPollTimeout) <= 0) continue;
      size_t messages = 0;
      uint64_t bytes = 0;
      for (auto& r : rejected) r = 0;
      while (messages < kMaxMessagesPerDrain && events.size() < kMaxEventsPerDrain) {
        if (!sock.recv(msg, zmq::recv_flags::dontwait)) break;
        // Multi-frame (topic, payload): the frames of a message arrive together; keep the last.
        while (msg.more()) {
          if (!sock.recv(msg, zmq::recv_flags::dontwait)) break;
        }
        ++messages;
        bytes += msg.size();
        const int64_t ingest_ms = ctx_.wall_ms();
        const int64_t ingest_ns = ctx_.steady_ns();
        decoder.DecodeMessage(std::string_view(static_cast<const char*>(msg.data()), msg.size()),
                              ingest_ms, ingest_ns, &events, rejected);
      }
      stats_.Inc(stats_.messages, messages);
      stats_.Inc(stats_.bytes, bytes);
      for (int i = 0; i < static_cast<int>(RejectReason::kCount_); ++i) {
        if (rejected[i] != 0) stats_.Inc(stats_.rejected[i], rejected[i]);
      }
      if (events.empty()) continue;
      stats_.Inc(stats_.events, events.size());
      int64_t blocked_ns = 0;  // backpressure only, not the routing work itself
      const bool more = ctx_.consumer->Consume(events, &blocked_ns);
      if (blocked_ns > 0) stats_.Inc(stats_.blocked_ns, static_cast<uint64_t>(blocked_ns));
      events.Clear();
      if (!more) break;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      Log(LogLevel::kError, cfg_.name + ": receive failed: " + e.what());
      break;
    }
  }
}

}  // namespace vigie::plugins::zmq_plugin
