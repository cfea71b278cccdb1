#pragma once
// ShardEngine: what a shard worker needs from the rules engine, as an interface so that the
// pipeline's threading can be tested with a scripted fake (no RuleSet, no YAML). Production
// wraps rules::Engine (rules_adapter.h); the methods mirror rules/engine.h one to one.
//
// Threading: exactly as rules::Engine — every call comes from the owning shard's thread, except
// the stats accessors (rule_count, rule_name, stats), which the scrape calls while the shard
// holds no rule swap in progress (ShardWorker serializes them with SwapRules under a mutex that
// is off the per-event path). RuleStats members are atomics written by the shard.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "rules/engine.h"
#include "rules/event.h"
#include "rules/output.h"

namespace vigie::rules {
class RuleSet;
}

namespace vigie::daemon {

class ShardEngine {
 public:
  virtual ~ShardEngine() = default;
  virtual void AdvanceTo(int64_t now_ms, rules::OutputSink& out) = 0;
  virtual void Process(const rules::Event& ev, int64_t t, rules::OutputSink& out) = 0;
  // Hints, as rules::Engine::Prepare / DropPrepared (kLookahead events ahead; dropped before
  // the batch's storage is reused). The default ignores them.
  static constexpr size_t kLookahead = rules::Engine::kLookahead;
  virtual void Prepare(const rules::Event& /*ev*/) {}
  virtual void DropPrepared() {}
  virtual int64_t now() const = 0;
  virtual int64_t NextTimer() const = 0;  // INT64_MAX if none
  virtual void SwapRules(std::shared_ptr<const rules::RuleSet> rules) = 0;
  virtual void TakeDirty(rules::StateDelta* delta) = 0;
  // A slice of a TakeDirty round (see rules::Engine::TakeDirtySlice); true when the round is
  // complete. The default takes the whole round at once.
  virtual bool TakeDirtySlice(rules::StateDelta* delta, size_t /*max_groups*/) {
    TakeDirty(delta);
    return true;
  }
  virtual void TakeAll(rules::StateDelta* delta) = 0;
  // Only groups whose activation changed (see rules::Engine::TakeChanged).
  virtual void TakeChanged(rules::StateDelta* delta) { TakeDirty(delta); }
  virtual bool Restore(std::string_view key, std::string_view value) = 0;
  virtual void FinishRestore(int64_t now_ms, rules::OutputSink& out) = 0;
  // Keys that only a full checkpoint of every shard replaces (rules::Engine::TakeForeignKeys).
  virtual void TakeForeignKeys(std::vector<std::string>* /*keys*/) {}
  virtual size_t group_count() const = 0;
  // Rules currently loaded in this engine and their counters.
  virtual size_t rule_count() const = 0;
  virtual const std::string& rule_name(size_t i) const = 0;
  virtual const rules::RuleStats& stats(size_t i) const = 0;
};

// Builds the engine of shard `shard_index` of `shard_count` over `rules`.
using ShardEngineFactory = std::function<std::unique_ptr<ShardEngine>(
    int shard_index, int shard_count, std::shared_ptr<const rules::RuleSet> rules)>;

// Which shards must see an event under the current rules (bit i = shard i). Immutable once
// published; Mask() is called concurrently by every source thread.
class Routing {
 public:
  virtual ~Routing() = default;
  virtual uint64_t Mask(const rules::Event& ev, int shard_count) const = 0;
};

}  // namespace vigie::daemon
