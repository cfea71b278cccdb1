#pragma once
// Engine: evaluates a RuleSet over a stream of events and time, per group, edge-triggered
// (RULES.md "Groups and activation"), and returns outputs through an OutputSink.
//
// One Engine per shard; it owns its groups' state outright. Not thread-safe: every call comes
// from the shard's thread. Time is injected: the engine never reads a clock — the shard worker
// feeds it wall-clock instants, the replay driver feeds it the events' times, tests feed it what
// they like. Timers (for:, absent_for:, window expiry, period close, session end) fire at their
// own instants, in (instant, rule order, arming order), before any event stamped at or after them.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rules/event.h"
#include "rules/output.h"
#include "rules/timezone.h"

namespace vigie::rules {

class RuleSet;  // rules/rule.h: compiled rules, immutable, shared by all shards

// Per-rule counters. Written only by the owning shard's thread (relaxed stores), read by the
// metrics scrape, which sums them over shards.
struct RuleStats {
  enum Error : int {
    kMissingField, kTypeMismatch, kDivByZero, kNotBoolean, kMissingGroupField,
    kTemplateMissingField, kDistinctOverflow, kErrorCount_
  };
  static const char* ErrorName(int e);  // "missing_field", ..., "missing_group_field", ...
  std::atomic<uint64_t> evaluations{0};
  std::atomic<uint64_t> activations{0};
  std::atomic<uint64_t> deactivations{0};
  std::atomic<uint64_t> errors[kErrorCount_]{};
  std::atomic<int64_t> groups{0};         // groups held in memory
  std::atomic<int64_t> active_groups{0};
  std::atomic<int64_t> state_bytes{0};    // bytes of the groups' last checkpointed form

  static void Add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

struct EngineOptions {
  const TimeZone* tz = nullptr;  // required; outlives the engine
  Location location;
  int shard_index = 0;           // this engine keeps only the groups whose key hashes here
  int shard_count = 1;
  // Groups idle this long with nothing that can still fire are dropped (0 = never).
  int64_t idle_evict_ms = 0;
  // Prepare()'s lookahead: kAuto decides from the group count and the rules reached per event;
  // kOn and kOff force it (tests, benchmarks).
  enum class Lookahead : uint8_t { kAuto, kOn, kOff };
  Lookahead lookahead = Lookahead::kAuto;
};

// The puts of a StateDelta: every key and value back to back in one buffer. A checkpoint hands
// hundreds of thousands of groups a second from the shards to the checkpointer thread; a pair of
// strings each was two allocations on the shard and two frees on the other thread (about 7 % of
// the daemon's CPU samples with the 200-rule bench set, bench/PROFILE.md).
class PutList {
 public:
  using Entry = std::pair<std::string_view, std::string_view>;  // valid until the next change

  PutList() = default;
  PutList(std::initializer_list<Entry> entries) { *this = entries; }
  PutList& operator=(std::initializer_list<Entry> entries) {
    clear();
    for (const Entry& e : entries) push_back(e);
    return *this;
  }

  void push_back(Entry e) {
    bytes_.append(e.first);
    EndKey();
    bytes_.append(e.second);
    EndValue();
  }
  // Writing one in place: append the key to buffer(), EndKey(), append the value, EndValue().
  std::string* buffer() { return &bytes_; }
  void EndKey() { ends_.push_back(bytes_.size()); }
  void EndValue() { ends_.push_back(bytes_.size()); }

  size_t size() const { return ends_.size() / 2; }
  bool empty() const { return ends_.empty(); }
  void clear() {
    bytes_.clear();
    ends_.clear();
  }
  size_t byte_size() const { return bytes_.size(); }  // keys and values
  Entry operator[](size_t i) const {
    const size_t k = i == 0 ? 0 : ends_[2 * i - 1], v = ends_[2 * i], end = ends_[2 * i + 1];
    return {std::string_view(bytes_).substr(k, v - k), std::string_view(bytes_).substr(v, end - v)};
  }
  Entry back() const { return (*this)[size() - 1]; }

  class const_iterator {
   public:
    using value_type = Entry;
    using difference_type = std::ptrdiff_t;
    const_iterator(const PutList* l, size_t i) : l_(l), i_(i) {}
    Entry operator*() const { return (*l_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const PutList* l_;
    size_t i_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

 private:
  std::string bytes_;
  std::vector<size_t> ends_;  // per entry: the end of its key, the end of its value
};

// What changed in durable state since the last TakeDirty(): written by the state layer in one
// batch. Keys and values are opaque bytes produced by the engine.
struct StateDelta {
  PutList puts;
  std::vector<std::string> deletes;
  std::vector<std::string> delete_prefixes;
  bool empty() const { return puts.empty() && deletes.empty() && delete_prefixes.empty(); }
  void clear() { puts.clear(); deletes.clear(); delete_prefixes.clear(); }
};

// Which shard a group key belongs to (FNV-1a of the key, mod shard_count).
int ShardOfKey(std::string_view key, int shard_count);

class Engine {
 public:
  Engine(std::shared_ptr<const RuleSet> rules, const EngineOptions& opts);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Fires every timer due at or before `now_ms`, in order, then sets engine time to now_ms.
  // Engine time never goes back: an earlier instant is ignored.
  void AdvanceTo(int64_t now_ms, OutputSink& out);
  // Advances to `t` (at least the engine time) and processes `ev` at that instant.
  void Process(const Event& ev, int64_t t, OutputSink& out);
  // A hint that `ev` will be processed after the events prepared before it: call it kLookahead
  // events ahead (a worker's batch: Prepare(events[i + kLookahead]) before
  // Process(events[i])). The engine may match `ev` and build its group keys now and ask for its
  // groups' cache lines, so that Process finds them there; it does so only while the groups
  // outgrow the caches and events reach few rules (otherwise the call returns at once). `ev`
  // must stay alive and unchanged until processed, or until DropPrepared(), which the caller
  // calls before it reuses the events' storage. Processing an event other than the oldest
  // prepared one forgets every plan. Never changes what Process does or outputs.
  static constexpr int kLookahead = 2;
  void Prepare(const Event& ev);
  void DropPrepared();
  int64_t now() const;
  // The earliest pending timer, kNever (INT64_MAX) if none: lets a worker sleep until then.
  // Const, but like every other call, only from the engine's thread (the timer queue may turn
  // its wheel to find it).
  int64_t NextTimer() const;

  // Hot reload between two events: a rule whose fingerprint is unchanged keeps its groups and
  // timers; a changed rule starts fresh; a removed rule's groups are dropped (and their durable
  // state deleted at the next TakeDirty()).
  void SwapRules(std::shared_ptr<const RuleSet> rules);
  const RuleSet& rules() const;
  // Stats of rule i of the current RuleSet (shard thread only).
  const RuleStats& stats(size_t rule_index) const;
  size_t group_count() const;

  // Thread-safe view for the metrics scrape and /rules: the RuleSet in force on this shard and
  // its per-rule stats, published atomically on every swap. Hold the shared_ptr while reading.
  struct StatsView {
    std::shared_ptr<const RuleSet> rules;
    std::vector<std::unique_ptr<RuleStats>> per_rule;  // parallel to the RuleSet's rules
    std::atomic<int64_t> groups{0};                     // all groups of this engine
  };
  std::shared_ptr<const StatsView> Stats() const;

  // Durable state. TakeDirty appends the serialized state of every group changed since the last
  // call, in packs of up to 32 groups of one rule (and deletions); the caller writes it in one
  // batch. Restore feeds back what was written
  // (any order); entries for unknown or changed rules are ignored and returned false.
  void TakeDirty(StateDelta* delta);
  // The same, a slice at a time, so that a shard with 100 000 dirty groups does not stop its
  // events for the 100+ ms their serialization takes: takes the packs of the groups that were
  // dirty when the current round began (a round begins at the first call after the previous one
  // completed), whole, until `max_groups` groups are written, and the deletions pending. Returns
  // true when the round is complete. Groups dirtied during a round belong to the next one. Apply the slices' deltas in the order taken
  // (with any TakeChanged deltas in between): each group is then stored as of its slice.
  bool TakeDirtySlice(StateDelta* delta, size_t max_groups);
  // Everything, dirty or not (a full checkpoint).
  void TakeAll(StateDelta* delta);
  // Only the groups that activated or deactivated since the last call (or TakeDirty): a small
  // checkpoint to take right after state changes, between two regular ones. They are written
  // together in one journal key, not in their packs; they stay dirty, and the journal is
  // deleted by the last slice of the first round that begins after it.
  void TakeChanged(StateDelta* delta);
  //
  // Groups are stored in packs of up to 32 of one rule and one shard, one key each; a pack key
  // names the shard count and the shard that wrote it, so every shard must be offered every key
  // (Restore returns true if it took anything from it, or kept it for FinishRestore). Every
  // delta handed out is numbered, packs and journals carry the number, and a journal's copy of
  // a group wins over its pack's unless the pack was written later (rules/README.md "Durable
  // state"). Any order of Restore calls gives the same groups.
  bool Restore(std::string_view key, std::string_view value);
  // After all Restore() calls: applies the journals, then re-arms timers at `now_ms`; timers
  // that fell due while the daemon was down fire with their own instants.
  void FinishRestore(int64_t now_ms, OutputSink& out);
  // After FinishRestore: the keys of packs written with another shard count (appended; kept by
  // shard 0's engine only). Their groups are now spread over this run's shards, so no shard's
  // own checkpoint can replace them: write every shard's TakeAll and delete these keys in one
  // batch (Pipeline::Restore does) before the shards run.
  void TakeForeignKeys(std::vector<std::string>* keys);
  // Key prefix under which this engine's groups live in the store ("g/").
  static std::string_view StatePrefix();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigie::rules
