// The source thread allocates nothing per event once warmed up: decoding city-like FlatBuffers and
// JSON batches into a recycled EventBuffer, and routing them through the Router into recycled
// batches (popped and returned by this thread, as a shard would), makes zero calls to operator
// new or delete after a warm-up.
//
// This binary replaces the global operator new/delete with counting versions
// (tests/common/counting_new.h), which is why it is an executable of its own
// (tests/plugins/alloc/CMakeLists.txt) and not part of plugins_tests. VIGIE_ALLOC_BACKTRACE=N
// prints the stacks of the first N counted allocations.
// Catch2's macros allocate, so the counted loops collect their results into plain variables and
// assert after the counter is stopped. The first test case checks that the counter does see the
// allocations of a buffer that is not recycled: the zero below is not a counter that never counts.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "daemon/pipeline/clock.h"
#include "daemon/pipeline/queues.h"
#include "daemon/pipeline/router.h"
#include "daemon/pipeline/rules_adapter.h"
#include "plugins/codec/event_encoder.h"
#include "plugins/codec/json_text.h"
#include "plugins/codec/message_decoder.h"
#include "rules/event.h"
#include "rules/loader.h"
#include "tests/common/counting_new.h"

namespace vigie {
namespace {

using plugins::RejectReason;
using rules::Event;
using rules::EventBuffer;
using rules::Value;

constexpr int64_t kIngestMs = 1795726800000;  // 2026-11-26T21:00:00Z
constexpr int kReasons = static_cast<int>(RejectReason::kCount_);
constexpr size_t kBatch = 256;  // events per message, as vigie-load sends them

// --- City-like batches ----------------------------------------------------------------------
// The kinds, names and values of bench/city: several are longer than the 15 bytes a std::string
// holds inline ("camera.heartbeat", "fontaine-d-ouche-3", "trente-octobre-x12"), so a slot that
// lost its fields' strings would have to allocate them again.

const char* const kDistricts[] = {"centre",      "gare",          "fontaine-d-ouche",
                                  "toison-d-or", "port-du-canal", "faubourg-raines",
                                  "montmuzard",  "mirande"};
const char* const kJunctions[] = {"darcy",         "republique",   "trente-octobre",
                                  "saint-bernard", "gabriel-peri", "rocade-nord"};

// One batch: 256 events of mixed kinds (different field counts and lengths), one without kind
// (missing_kind) and one with a ts out of range (bad_ts), so that decoders also drop slots.
// Returns the events (for FlatBuffers) and a JSON array of the same events, where the vehicles'
// gps.* fields are written as a nested object and some ts as RFC 3339 strings.
struct CityBatch {
  std::vector<Event> events;
  std::string json;
};

CityBatch MakeCityBatch(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto district = [&] { return std::string(kDistricts[pick(std::size(kDistricts))]); };
  auto zone = [&] { return district() + "-" + std::to_string(1 + pick(9)); };
  CityBatch b;
  for (size_t i = 0; i < kBatch; ++i) {
    Event ev;
    ev.ts_ms = 1795726000000 + static_cast<int64_t>(i) * 7;
    ev.has_ts = true;
    auto str = [&](const char* name, const std::string& v) { ev.Set(name, Value::String(v)); };
    auto num = [&](const char* name, double v) { ev.Set(name, Value::Number(v)); };
    switch (pick(8)) {
      case 0:
        ev.kind = "traffic";
        str("device", "loop-" + std::to_string(pick(4000)));
        str("zone", zone());
        str("junction", kJunctions[pick(std::size(kJunctions))]);
        str("lane", pick(7) == 3 ? "bus" : "car");
        num("vehicles", static_cast<double>(pick(40)));
        num("speed", 12.5 + static_cast<double>(pick(40)));
        break;
      case 1:
        ev.kind = "pedestrian";
        str("device", "ped-" + std::to_string(pick(900)));
        str("crossing", std::string(kJunctions[pick(std::size(kJunctions))]) + "-x" +
                            std::to_string(1 + pick(20)));
        num("count", static_cast<double>(pick(30)));
        break;
      case 2:
        ev.kind = "lamp.status";
        str("device", "lamp-" + std::to_string(pick(20000)));
        str("zone", zone());
        str("status", pick(10) == 0 ? "fault" : "ok");
        num("power_w", 40.0 + static_cast<double>(pick(60)));
        break;
      case 3:
        ev.kind = "camera.heartbeat";
        str("device", "cam-" + std::to_string(pick(600)));
        str("zone", zone());
        break;
      case 4:
        ev.kind = "water.pressure";
        str("device", "wp-" + std::to_string(pick(300)));
        str("district", district());
        num("bar", 3.1 + static_cast<double>(pick(20)) / 10);
        break;
      case 5:
        ev.kind = "bin.level";
        str("device", "bin-" + std::to_string(pick(5000)));
        str("district", district());
        num("fill", static_cast<double>(pick(100)));
        ev.Set("compacted", Value::Bool(pick(2) == 0));
        break;
      case 6:
        ev.kind = "report";
        str("device", "app-" + std::to_string(pick(100000)));
        str("district", district());
        str("category", pick(2) ? "pothole" : "graffiti on the wall of the school");
        num("severity", static_cast<double>(1 + pick(3)));
        break;
      default:
        ev.kind = "vehicle.position";
        str("device",
            std::string(pick(2) ? "police-" : "waste-collector-") + std::to_string(pick(90)));
        str("fleet", pick(2) ? "police" : "waste");
        str("district", district());
        num("speed", static_cast<double>(pick(50)));
        num("gps.lat", 47.3 + static_cast<double>(pick(1000)) / 10000);
        num("gps.lon", 5.0 + static_cast<double>(pick(1000)) / 10000);
        break;
    }
    if (i == 100) ev.kind.clear();  // missing_kind
    if (i == 200) ev.ts_ms = -4;    // bad_ts
    b.events.push_back(std::move(ev));
  }

  // JSON by hand: gps.* nested, every third ts as RFC 3339.
  std::string& j = b.json;
  j = "[";
  for (size_t i = 0; i < b.events.size(); ++i) {
    const Event& ev = b.events[i];
    if (i) j += ", ";
    j += "{\"ts\": ";
    if (i % 3 == 0 && ev.ts_ms >= 0) {
      char buf[40];
      j += '"';
      j.append(buf, codec::FormatRfc3339Ms(ev.ts_ms, buf));
      j += '"';
    } else {
      codec::AppendInt(&j, ev.ts_ms);
    }
    if (!ev.kind.empty()) {
      j += ", \"kind\": ";
      codec::AppendJsonString(&j, ev.kind);
    }
    bool in_gps = false;
    for (const auto& f : ev.fields) {
      std::string_view name = f.name;
      const bool gps = name.substr(0, 4) == "gps.";
      j += gps && !in_gps ? ", \"gps\": {" : ", ";
      in_gps = gps;
      codec::AppendJsonString(&j, gps ? name.substr(4) : name);
      j += ": ";
      const Value v = f.value.view();
      if (v.is_number()) {
        codec::AppendJsonNumber(&j, v.num);
      } else if (v.is_string()) {
        codec::AppendJsonString(&j, v.str);
      } else {
        j += v.b ? "true" : "false";
      }
    }
    if (in_gps) j += "}";
    j += "}";
  }
  j += "]";
  return b;
}

std::string EncodeFb(const std::vector<Event>& events) {
  flatbuffers::FlatBufferBuilder fbb;
  codec::EncodeEventBatchFlatbuffers(events, &fbb);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

// Messages of both formats, several seeds (so a slot is refilled with other kinds and lengths),
// and one FlatBuffer at an odd address (the decoder's aligned copy).
struct Messages {
  std::vector<std::string> owned;
  std::vector<std::string_view> views;
  size_t events_per_pass = 0;  // valid events over all views
};

Messages MakeMessages() {
  Messages m;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    CityBatch b = MakeCityBatch(seed);
    m.owned.push_back(EncodeFb(b.events));
    m.owned.push_back(b.json);
  }
  m.owned.push_back(" " + m.owned[0]);  // misaligned by one byte
  for (size_t i = 0; i < m.owned.size(); ++i) {
    std::string_view v = m.owned[i];
    if (i + 1 == m.owned.size()) v.remove_prefix(1);
    m.views.push_back(v);
  }
  m.events_per_pass = m.views.size() * (kBatch - 2);
  return m;
}

// A digest of what was decoded, computed without allocating.
uint64_t Digest(const Event& ev) {
  uint64_t d = ev.kind.size() * 131 + static_cast<uint64_t>(ev.ts_ms) + (ev.has_ts ? 7 : 0);
  for (const auto& f : ev.fields) {
    d = d * 31 + f.name.size();
    d = d * 31 + f.value.str.size() + static_cast<uint64_t>(f.value.num * 1000) +
        static_cast<uint64_t>(f.value.type);
  }
  return d;
}

struct Rejected {
  uint64_t r[kReasons] = {};
  uint64_t operator[](RejectReason x) const { return r[static_cast<int>(x)]; }
};

TEST_CASE("alloc: the counter sees the allocations of a buffer that is not recycled", "[alloc]") {
  const Messages m = MakeMessages();
  codec::MessageDecoder d;
  Rejected rej;
  {
    EventBuffer warm;  // warms the decoders' own buffers
    for (std::string_view msg : m.views) d.DecodeMessage(msg, kIngestMs, 1, &warm, rej.r);
  }
  size_t n = 0;
  AllocCounter c;
  for (std::string_view msg : m.views) {
    EventBuffer fresh;  // what the source did before: new events for every message
    n += d.DecodeMessage(msg, kIngestMs, 1, &fresh, rej.r);
  }
  c.Stop();
  CHECK(n == m.events_per_pass);
  // At least one allocation per event (its field list), and as many frees.
  CHECK(c.news() >= m.events_per_pass);
  CHECK(c.deletes() == c.news());
}

TEST_CASE(
    "alloc: decoding FlatBuffers and JSON batches into a recycled EventBuffer allocates "
    "nothing after a warm-up",
    "[alloc]") {
  const Messages m = MakeMessages();
  codec::MessageDecoder d;
  EventBuffer buf;
  Rejected rej;
  uint64_t want_digest = 0;
  // Warm-up: two passes over every message (each slot sees every kind once per pass).
  for (int pass = 0; pass < 2; ++pass) {
    want_digest = 0;
    for (std::string_view msg : m.views) {
      buf.Clear();
      d.DecodeMessage(msg, kIngestMs, 1, &buf, rej.r);
      for (const Event& ev : buf) want_digest += Digest(ev);
    }
  }
  const Rejected before = rej;

  constexpr int kPasses = 20;
  size_t n = 0;
  uint64_t digest = 0;
  AllocCounter c;
  for (int pass = 0; pass < kPasses; ++pass) {
    for (std::string_view msg : m.views) {
      buf.Clear();
      n += d.DecodeMessage(msg, kIngestMs, 1, &buf, rej.r);
      for (const Event& ev : buf) digest += Digest(ev);
    }
  }
  c.Stop();
  CHECK(c.news() == 0);
  CHECK(c.deletes() == 0);
  // And it did decode: the same events, the same rejects, every pass.
  CHECK(n == kPasses * m.events_per_pass);
  CHECK(digest == kPasses * want_digest);
  CHECK(rej[RejectReason::kMissingKind] - before[RejectReason::kMissingKind] ==
        kPasses * m.views.size());
  CHECK(rej[RejectReason::kBadTimestamp] - before[RejectReason::kBadTimestamp] ==
        kPasses * m.views.size());
  CHECK(rej[RejectReason::kMalformed] == 0);
}

// --- Decode + route --------------------------------------------------------------------------

// Routes by a hash of the device; traffic also goes to its zone's shard (an event several
// shards need is copied), reports go nowhere (unmatched, they stay in the source's buffer).
class CityRouting final : public daemon::Routing {
 public:
  uint64_t Mask(const Event& ev, int shards) const override {
    if (ev.kind == "report") return 0;
    auto shard_of = [&](std::string_view field) {
      const Value v = ev.Get(field);
      return std::hash<std::string_view>()(v.str) % static_cast<size_t>(shards);
    };
    uint64_t mask = uint64_t{1} << shard_of("device");
    if (ev.kind == "traffic") mask |= uint64_t{1} << shard_of("zone");
    return mask;
  }
};

// The source thread's loop (decode a drain of messages, Consume) and the shards' side (pop every
// batch, read its events, return it to the pool), all in this thread.
struct RouteRig {
  static constexpr int kShards = 3;
  daemon::ManualClock clock{kIngestMs};
  daemon::BatchPool pool;
  std::vector<std::unique_ptr<daemon::ShardQueue>> queues;
  std::unique_ptr<daemon::Router> router;
  std::unique_ptr<plugins::EventConsumer> producer;
  std::vector<std::unique_ptr<moodycamel::ConsumerToken>> ctoks;
  std::unique_ptr<moodycamel::ProducerToken> free_tok;
  codec::MessageDecoder decoder;
  EventBuffer buf;
  Rejected rej;

  explicit RouteRig(std::shared_ptr<const daemon::Routing> routing) {
    std::vector<daemon::ShardQueue*> qs;
    for (int s = 0; s < kShards; ++s) {
      queues.push_back(std::make_unique<daemon::ShardQueue>(1 << 16, 64, 4));
      qs.push_back(queues.back().get());
      ctoks.push_back(std::make_unique<moodycamel::ConsumerToken>(queues.back()->queue()));
    }
    free_tok = std::make_unique<moodycamel::ProducerToken>(pool.free_list());
    daemon::RouterOptions o;
    o.max_batch_events = 256;
    router = std::make_unique<daemon::Router>(o, qs, &pool, &clock);
    router->SetRouting(std::move(routing));
    producer = router->NewProducer();
  }

  // One drain of the source: `count` messages from `first` (cyclic) into the buffer, then
  // Consume, then every shard empties its queue. Returns false if Consume refused.
  bool Round(const Messages& m, size_t first, size_t count, uint64_t* routed_digest) {
    buf.Clear();
    for (size_t i = 0; i < count; ++i) {
      decoder.DecodeMessage(m.views[(first + i) % m.views.size()], kIngestMs, 1, &buf, rej.r);
    }
    if (!producer->Consume(buf)) return false;
    daemon::EventBatch* got[16];
    for (int s = 0; s < kShards; ++s) {
      for (;;) {
        const size_t n =
            queues[static_cast<size_t>(s)]->PopBulk(*ctoks[static_cast<size_t>(s)], got, 16);
        if (n == 0) break;
        for (size_t k = 0; k < n; ++k) {
          for (size_t e = 0; e < got[k]->size; ++e) *routed_digest += Digest(got[k]->events[e]);
          queues[static_cast<size_t>(s)]->Done(got[k]->size);
          pool.Put(got[k], free_tok.get());
        }
      }
    }
    return true;
  }
};

// Drives `rounds` drains of 4 messages each, shifting the first message by one every round so
// that the buffer's slots, the batches and the shards see ever different mixes.
struct RouteResult {
  uint64_t news = 0, deletes = 0, routed = 0, digest = 0;
  bool ok = true;
};

// Warm-up: every event object of the system (the buffer's slots, the batches' slots) moves
// between the source and the batches and keeps the largest buffers it has held; it takes a few
// hundred rounds (a few 100k events, well under a second of a loaded daemon) before every one
// has held the longest strings at every field position. Measured: the last allocation comes
// around round 200-400 with these batches; 1500 leaves a wide margin.
constexpr int kWarmRounds = 1500;
constexpr int kRounds = 500;

RouteResult RunRoute(RouteRig* rig, const Messages& m, int warm_rounds, int rounds) {
  uint64_t digest = 0;
  size_t first = 0;
  for (int r = 0; r < warm_rounds; ++r) rig->Round(m, first++, 4, &digest);
  RouteResult res;
  const uint64_t routed0 = rig->router->stats().routed.load();
  digest = 0;
  {
    AllocCounter c;
    for (int r = 0; r < rounds && res.ok; ++r) res.ok = rig->Round(m, first++, 4, &digest);
    c.Stop();
    res.news = c.news();
    res.deletes = c.deletes();
  }
  res.routed = rig->router->stats().routed.load() - routed0;
  res.digest = digest;
  return res;
}

TEST_CASE(
    "alloc: decode + route through the Router into recycled batches allocates nothing "
    "after a warm-up",
    "[alloc]") {
  const Messages m = MakeMessages();
  RouteRig rig(std::make_shared<CityRouting>());
  const RouteResult r = RunRoute(&rig, m, kWarmRounds, kRounds);
  REQUIRE(r.ok);
  CHECK(r.news == 0);
  CHECK(r.deletes == 0);
  CHECK(r.routed > kRounds * 4 * (kBatch - 2) / 2);  // most were routed (reports were not)
  CHECK(r.digest != 0);
  CHECK(rig.router->stats().copied.load() > 0);     // multi-shard events were copied
  CHECK(rig.router->stats().unmatched.load() > 0);  // and unmatched ones stayed in the buffer
}

TEST_CASE("alloc: the same with the real RuleSet routing of config/rules", "[alloc]") {
  std::vector<rules::RuleSource> sources;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(VIGIE_CITY_RULES_DIR)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    sources.push_back({f.string(), std::string(std::istreambuf_iterator<char>(in), {})});
  }
  REQUIRE(!sources.empty());
  std::vector<rules::LoadError> errors;
  auto rs = rules::CompileRules(sources, &errors);
  std::string msgs;
  for (const auto& e : errors) msgs += e.ToString() + "\n";
  INFO(msgs);
  REQUIRE(rs);
  const Messages m = MakeMessages();
  RouteRig rig(daemon::MakeRuleSetRouting(rs));
  const RouteResult r = RunRoute(&rig, m, kWarmRounds, kRounds);
  REQUIRE(r.ok);
  CHECK(r.news == 0);
  CHECK(r.deletes == 0);
  CHECK(r.routed > 0);
  CHECK(rig.router->stats().copied.load() > 0);
}

}  // namespace
}  // namespace vigie
