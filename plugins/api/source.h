#pragma once
// Source: an input plugin (ZeroMQ now; MQTT and NATS later). A source owns its thread(s): it
// receives messages, decodes them (off the shard threads) into Events and hands each decoded
// batch to the EventConsumer, which routes them to the shard queues. Consume() blocks while the
// shard queues are full, so a source stops reading and its socket pushes back on senders.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "rules/event.h"

namespace vigie::plugins {

// Why an incoming message or event was rejected (vigie_events_rejected_total{reason}).
enum class RejectReason : uint8_t {
  kMalformed = 0,    // not JSON / not a valid FlatBuffer / not an object / bad member type
  kOversize,         // message over max_message_bytes
  kMissingKind,      // event without a string `kind`
  kBadTimestamp,     // `ts` neither ms nor RFC 3339
  kCount_
};
const char* RejectReasonName(RejectReason r);  // "malformed", "oversize", "missing_kind", "bad_ts"

// Counters a source owns; written by the source's thread, read by the metrics scrape.
struct SourceStats {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> events{0};            // vigie_events_received_total{source}
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> rejected[static_cast<int>(RejectReason::kCount_)]{};
  std::atomic<uint64_t> blocked_ns{0};        // time spent waiting on full shard queues
  void Inc(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };
using Logger = std::function<void(LogLevel, std::string_view)>;

class EventConsumer {
 public:
  virtual ~EventConsumer() = default;
  // Takes the live events of the buffer. It may swap them with spent events of its own (the
  // router does, with its recycled batches), so afterwards the buffer's slots hold unspecified
  // events whose buffers can be reused: the source Clear()s it and decodes into it again, which
  // keeps the source thread free of per-event allocation. Blocks while downstream is full;
  // returns false when the daemon is stopping (the source should then stop too).
  // *blocked_ns (if given) grows by the time the call spent waiting for room downstream
  // (backpressure) — not the time it spent routing: that is the source's own work
  // (vigie_source_blocked_seconds_total counts only the wait).
  bool Consume(rules::EventBuffer& events, int64_t* blocked_ns = nullptr) {
    int64_t waited = 0;
    const bool more = DoConsume(events, &waited);
    if (blocked_ns != nullptr) *blocked_ns += waited;
    return more;
  }

 protected:
  // What Consume() does; adds the time spent waiting for room to *blocked_ns (never null).
  virtual bool DoConsume(rules::EventBuffer& events, int64_t* blocked_ns) = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual const std::string& name() const = 0;  // label: "zmq:tcp://127.0.0.1:7001"
  // Opens sockets (errors are returned, e.g. address in use) and starts the receive thread.
  virtual bool Start(std::string* error) = 0;
  // Stops receiving; returns once the thread has exited.
  virtual void Stop() = 0;
  virtual const SourceStats& stats() const = 0;
};

}  // namespace vigie::plugins
