#include "daemon/pipeline/router.h"

#include <array>
#include <bit>
#include <chrono>
#include <cassert>
#include <thread>

namespace vigie::daemon {
namespace {

void Inc(std::atomic<uint64_t>& c, uint64_t n) {
  if (n) c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

class Router::Producer final : public plugins::EventConsumer {
 public:
  explicit Producer(Router* r) : router_(r) {
    tokens_.reserve(r->queues_.size());
    for (ShardQueue* q : r->queues_) tokens_.emplace_back(q->queue());
  }

 protected:
  bool DoConsume(rules::EventBuffer& events, int64_t* blocked_ns) override {
    return router_->ConsumeImpl(events, tokens_.data(), blocked_ns);
  }

 private:
  Router* router_;
  std::vector<moodycamel::ProducerToken> tokens_;
};

Router::Router(const RouterOptions& opts, std::vector<ShardQueue*> queues, BatchPool* pool,
               const WallClock* clock)
    : opts_(opts), queues_(std::move(queues)), pool_(pool), clock_(clock) {
  assert(!queues_.empty() && queues_.size() <= kMaxShards);
}

Router::~Router() = default;

void Router::SetRouting(std::shared_ptr<const Routing> routing) {
  routing_.store(std::move(routing), std::memory_order_release);
}

bool Router::DoConsume(rules::EventBuffer& events, int64_t* blocked_ns) {
  return ConsumeImpl(events, nullptr, blocked_ns);
}

std::unique_ptr<plugins::EventConsumer> Router::NewProducer() {
  return std::make_unique<Producer>(this);
}

void Router::Close() {
  closed_.store(true, std::memory_order_seq_cst);
  // Calls that passed the closed check before the store finish (or give up waiting) soon.
  while (active_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

bool Router::Flush(int shard, EventBatch* b, moodycamel::ProducerToken* tok, bool* waited,
                   int64_t* blocked_ns) {
  ShardQueue* q = queues_[static_cast<size_t>(shard)];
  const size_t n = b->size;
  if (q->TryAdmit(n)) {
    if (q->Push(b, tok)) return true;
    q->Unadmit(n);
  }
  // Full: wait for the shard to make room. This is the backpressure point.
  if (!*waited) Inc(stats_.backpressure_waits, 1);
  *waited = true;
  const auto t0 = std::chrono::steady_clock::now();
  Backoff backoff;
  bool ok = false;
  for (;;) {
    if (closed_.load(std::memory_order_acquire)) break;
    if (q->TryAdmit(n)) {
      if (q->Push(b, tok)) {
        ok = true;
        break;
      }
      q->Unadmit(n);
    }
    backoff.Pause();
  }
  // Real time spent waiting (not event time: a ManualClock would report none).
  const int64_t dt = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count();
  if (dt > 0) *blocked_ns += dt;
  return ok;
}

bool Router::ConsumeImpl(rules::EventBuffer& events, moodycamel::ProducerToken* tokens,
                         int64_t* caller_blocked_ns) {
  active_.fetch_add(1, std::memory_order_seq_cst);
  Inc(stats_.messages, 1);
  Inc(stats_.events, events.size());
  if (closed_.load(std::memory_order_seq_cst)) {
    Inc(stats_.dropped_closed, events.size());
    active_.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  const std::shared_ptr<const Routing> routing = routing_.load(std::memory_order_acquire);
  const int shards = static_cast<int>(queues_.size());
  const size_t max_batch = opts_.max_batch_events ? opts_.max_batch_events : 1;

  std::array<EventBatch*, kMaxShards> cur{};
  uint64_t unmatched = 0, routed = 0, copied = 0, dropped = 0;
  bool waited = false;
  int64_t blocked_ns = 0;
  bool ok = true;

  for (size_t i = 0; i < events.size() && ok; ++i) {
    rules::Event& ev = events[i];
    uint64_t mask = routing ? routing->Mask(ev, shards) : 0;
    if (shards < kMaxShards) mask &= (uint64_t{1} << shards) - 1;
    if (mask == 0) {
      ++unmatched;
      continue;
    }
    while (mask) {
      const int s = std::countr_zero(mask);
      mask &= mask - 1;
      EventBatch*& b = cur[static_cast<size_t>(s)];
      if (!b) b = pool_->Get();
      if (mask == 0) {
        b->PushSwap(ev);  // last shard takes the original
      } else {
        b->PushCopy(ev);
        ++copied;
      }
      ++routed;
      if (b->size >= max_batch) {
        if (!Flush(s, b, tokens ? &tokens[s] : nullptr, &waited, &blocked_ns)) {
          ok = false;
          dropped += b->size;
          routed -= b->size;
          pool_->Put(b);
          b = nullptr;
          dropped += events.size() - i - 1;
          break;
        }
        b = nullptr;
      }
    }
  }
  for (int s = 0; s < shards; ++s) {
    EventBatch*& b = cur[static_cast<size_t>(s)];
    if (!b) continue;
    if (ok && !Flush(s, b, tokens ? &tokens[s] : nullptr, &waited, &blocked_ns)) ok = false;
    if (!ok) {
      dropped += b->size;
      routed -= b->size;
      pool_->Put(b);
    }
    b = nullptr;
  }

  Inc(stats_.unmatched, unmatched);
  Inc(stats_.routed, routed);
  Inc(stats_.copied, copied);
  Inc(stats_.dropped_closed, dropped);
  if (blocked_ns > 0) {
    Inc(stats_.blocked_ns, static_cast<uint64_t>(blocked_ns));
    *caller_blocked_ns += blocked_ns;
  }
  active_.fetch_sub(1, std::memory_order_seq_cst);
  return ok;
}

}  // namespace vigie::daemon
