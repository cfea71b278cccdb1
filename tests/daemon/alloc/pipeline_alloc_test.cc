// The daemon's event path allocates nothing once warm, also when rules fire: events go through
// the real Pipeline (router, two shard workers running the rules engine, the output dispatcher)
// to a sink that encodes every output as JSON, and nothing calls operator new or delete on any
// of those threads. The outputs circulate: a shard fills one the dispatcher has sent and given
// back (OutputQueue::Recycle / TakeSpent), so their strings are allocated during the warm-up
// only.
//
// The threads counted are the shards and the dispatcher: the test's own thread plays the source
// and runs the router, whose recycled batches are tested on their own in tests/plugins/alloc
// (and whose batches, taken from a shared pool, reach their largest fill only now and then).
//
// This binary replaces the global operator new/delete (tests/common/counting_new.h), which is
// why it is an executable of its own. Catch2's macros allocate: results
// are collected in plain variables while counting and asserted after. The first case checks that
// the counter sees the warm-up's allocations: the zero below is not a counter that never counts.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/pipeline.h"
#include "plugins/api/sink.h"
#include "plugins/codec/output_codec.h"
#include "rules/loader.h"
#include "rules/timezone.h"
#include "tests/common/counting_new.h"
#include "tests/common/firing_rules.h"

namespace vigie::daemon {
namespace {

using rules::Event;
using rules::EventBuffer;
using rules::Value;

// Encodes every output into a reused buffer, as the ZeroMQ sink does before sending.
class EncodingSink final : public plugins::Sink {
 public:
  const std::string& name() const override { return name_; }
  bool Start(std::string*) override { return true; }
  void Send(const rules::Output& o) override {
    buf_.clear();
    codec::EncodeOutputJson(o, &buf_);
    stats_.sent.store(stats_.sent.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    stats_.bytes.store(stats_.bytes.load(std::memory_order_relaxed) + buf_.size(),
                       std::memory_order_relaxed);
  }
  void Stop() override {}
  const plugins::SinkStats& stats() const override { return stats_; }
  uint64_t sent() const { return stats_.sent.load(std::memory_order_relaxed); }

 private:
  std::string name_ = "test";
  std::string buf_;
  plugins::SinkStats stats_;
};

constexpr int kDevices = 300;
constexpr size_t kBatch = 256;

class Rig {
 public:
  Rig() : clock_(1795726800000, 1), tz_(0) {
    std::vector<rules::LoadError> errors;
    auto rs = rules::CompileRules({rules::RuleSource{"alloc.yaml", testing::kFiringRules}}, &errors);
    REQUIRE(errors.empty());
    REQUIRE(rs != nullptr);
    PipelineOptions o;
    o.shards = 2;
    o.tz = &tz_;
    o.checkpoint_interval_ms = 0;
    o.queue_capacity = 4096;
    // Outputs in circulation are at most a full output queue, the dispatcher's bulk buffer and
    // the shard's spare; a burst that goes beyond the last high-water mark makes new ones (the
    // warm-up). A small queue lets the warm-up reach that mark, as the default 1024 does in
    // the daemon's first busy seconds.
    o.output_queue_capacity = 64;
    PipelineDeps deps;
    deps.clock = &clock_;
    deps.commands = &commands_;
    deps.alerts = &alerts_;
    p_ = std::make_unique<Pipeline>(o, std::move(deps), std::move(rs));
    for (int i = 0; i < kDevices; ++i) {
      Event e;
      e.kind = "traffic";
      e.Set("device", Value::String("camera-approach-" + std::to_string(i)));
      e.Set("junction", Value::String("j-" + std::to_string(i % 23)));
      e.Set("lane", Value::String(i % 3 ? "car" : "bus"));
      e.Set("speed", Value::Number(0));
      protos_.push_back(std::move(e));
    }
    p_->Start();
    consumer_ = p_->NewConsumer();
  }
  ~Rig() { p_->Stop(); }

  // Sends `messages` messages of kBatch events (speeds cycling through 30..52 km/h, so that the
  // groups keep changing state) and waits until every event is processed and every output sent.
  // Returns false at the deadline. Allocates nothing itself once the buffer has grown.
  bool Send(int messages) {
    for (int m = 0; m < messages; ++m) {
      buf_.Clear();
      for (size_t i = 0; i < kBatch; ++i, ++n_) {
        Event& ev = buf_.Append();
        ev = protos_[n_ % kDevices];
        ev.ts_ms = clock_.NowMs();
        ev.has_ts = true;
        ev.Set("speed", Value::Number(static_cast<double>(30 + n_ % 23)));
      }
      if (!consumer_->Consume(buf_)) return false;
      sent_ += kBatch;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      uint64_t processed = 0, outputs = 0;
      for (int s = 0; s < p_->shard_count(); ++s) {
        processed += p_->shard(s).stats().processed.load(std::memory_order_relaxed);
        outputs += p_->shard(s).stats().outputs.load(std::memory_order_relaxed);
      }
      if (processed == sent_ && commands_.sent() + alerts_.sent() == outputs) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
  }
  uint64_t outputs() const { return commands_.sent() + alerts_.sent(); }

 private:
  ManualClock clock_;
  rules::FixedOffsetZone tz_;
  EncodingSink commands_, alerts_;
  std::unique_ptr<Pipeline> p_;
  std::unique_ptr<plugins::EventConsumer> consumer_;
  std::vector<Event> protos_;
  EventBuffer buf_;
  uint64_t n_ = 0;
  uint64_t sent_ = 0;
};

TEST_CASE("pipeline alloc: the counter sees the warm-up's allocations", "[alloc]") {
  Rig rig;
  AllocCounter c;
  const bool done = rig.Send(4);  // groups, windows, batches and the first outputs are made
  c.Stop();
  REQUIRE(done);
  CHECK(rig.outputs() > 0);
  CHECK(c.news() > static_cast<uint64_t>(kDevices));
}

TEST_CASE("pipeline alloc: events that fire allocate nothing on any thread once warm",
          "[alloc]") {
  Rig rig;
  AllocCounter::ExcludeThisThread();  // the source + router side (tests/plugins/alloc)
  // Warm-up: every group exists and has fired; the outputs in circulation approach their
  // working number and sizes. What may still grow is a high-water mark now and then (a burst of
  // outputs beyond the last, an output refilled with a longer text than it ever held), not
  // something per event: so the test looks for a round of 200 messages (51 200 events,
  // thousands of outputs) with no allocation at all among the next ten rounds. Anything
  // allocated per event or per output would show in every round.
  REQUIRE(rig.Send(2000));
  constexpr int kRounds = 10;
  uint64_t news[kRounds] = {}, deletes[kRounds] = {}, fired[kRounds] = {};
  bool done = true;
  int clean = -1;
  for (int r = 0; r < kRounds && clean < 0 && done; ++r) {
    const uint64_t before = rig.outputs();
    AllocCounter c;
    done = rig.Send(200);
    c.Stop();
    news[r] = c.news();
    deletes[r] = c.deletes();
    fired[r] = rig.outputs() - before;
    if (news[r] == 0 && deletes[r] == 0) clean = r;
  }
  REQUIRE(done);
  std::string rounds;
  for (int r = 0; r < kRounds; ++r) {
    rounds += std::to_string(news[r]) + "/" + std::to_string(deletes[r]) + "/" +
              std::to_string(fired[r]) + " ";
  }
  INFO("news/deletes/outputs per round: " << rounds);
  REQUIRE(clean >= 0);
  CHECK(fired[clean] > 5000);  // one output per ten events or so: the output path was exercised
}

}  // namespace
}  // namespace vigie::daemon
