// The evaluator. See engine.h for the contract; the notes here are about how.
//
// Timers: one queue per engine ordered by (instant, rule order, arming order): rules/timer_queue.h,
// which pops in a binary min-heap's order at a cost that does not grow with its size. Each group
// has at most one *live* heap entry, at its earliest "wake" instant (the minimum of its pending
// `for` timer, absence deadline, next sliding-window expiry, tumbling period close, session end
// and idle-eviction deadline). When a group's wake moves later (an absence deadline pushed back by
// a new event) nothing is pushed: the old entry pops, finds nothing due and re-arms at the new
// wake. So the queue holds O(groups) entries whatever the event rate, and no tick ever scans the
// groups. Stale entries are recognised because their instant differs from
// the group's `heap_due`; a reference count keeps an evicted group's memory alive until its last
// heap entry is popped.
#include "rules/engine.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <span>
#include <tuple>
#include <type_traits>
#include <unordered_map>

#include "rules/bytes.h"
#include "rules/group_table.h"
#include "rules/rule.h"
#include "rules/timer_queue.h"

namespace vigie::rules {

const char* RuleStats::ErrorName(int e) {
  switch (e) {
    case kMissingField: return "missing_field";
    case kTypeMismatch: return "type_mismatch";
    case kDivByZero: return "division_by_zero";
    case kNotBoolean: return "not_boolean";
    case kMissingGroupField: return "missing_group_field";
    case kTemplateMissingField: return "template_missing_field";
    case kDistinctOverflow: return "distinct_overflow";
    default: return "unknown";
  }
}

int ShardOfKey(std::string_view key, int shard_count) {
  if (shard_count <= 1) return 0;
  return static_cast<int>(Fnv1a(key) % static_cast<uint64_t>(shard_count));
}

uint64_t RouteMask(const RuleSet& rs, const Event& ev, int shard_count) {
  thread_local std::vector<uint32_t> matched;
  thread_local std::string key;
  thread_local std::vector<uint8_t> seen;
  // By name, not by field number (rules/fields.h): the source has just decoded the event, so
  // its fields are in cache and the few reads here cost less than numbering every field.
  rs.Match(ev, &matched);
  if (matched.empty()) return 0;
  if (shard_count <= 1) return 1;
  seen.assign(rs.groupsets.size(), 0);
  uint64_t mask = 0;
  for (uint32_t idx : matched) {
    int gs = rs.rules[idx].groupset;
    if (seen[gs]) continue;
    seen[gs] = 1;
    if (BuildGroupKey(rs.groupsets[gs], ev, &key, nullptr)) {
      mask |= 1ull << ShardOfKey(key, shard_count);
    } else {
      mask |= 1ull;  // shard 0 counts events that lack a group_by field
    }
  }
  return mask;
}

std::string_view Engine::StatePrefix() { return "g/"; }

namespace {

// The durable form's format byte (first byte of every value). Format 1 (up to 8ca9379) is still
// read, and rewritten as format 2 by the first checkpoint after the restart (Restore).
constexpr uint8_t kStateFormat1 = 1;
constexpr uint8_t kStateFormat2 = 2;
// Format 2 keys: "g/" kKeyFormat2 <rule id, 8 bytes> <group key>. Format 1 keys have the rule
// name there, which starts with [a-z0-9]: the byte tells them apart.
constexpr char kKeyFormat2 = '\x02';
constexpr size_t kKeyHeader2 = 2 + 1 + 8;
// Format 2, in place of the group values: the one group value is the string key itself.
constexpr uint8_t kGroupValueIsKey = 1;
// Format 2: pending_due, last_activity, period_end, session_end, absence_due.
constexpr int kTimes = 5;
// Format 3 packs up to kPackGroups groups of one rule and one shard under one key:
//   key   "g/" kKeyFormat3 <rule id, 8 bytes> <shard count, 2> <shard, 2> <bucket, 4>
//   value kStateFormat3 <count, varint> then per group <group key, Str> <format 2 value, Str>
// RocksDB's work (memtable inserts, flushes, compactions) grows with the number of keys more
// than with their bytes (bench/PROFILE.md); a pack is rewritten whole when any of its groups
// changed. Groups whose activation changed are also written alone, as format 2 keys, by the
// small checkpoints taken right after activations (TakeChanged); such a key is always newer
// than the group's copy in its pack, because the pack's next write deletes it in the same batch.
constexpr char kKeyFormat3 = '\x03';
constexpr uint8_t kStateFormat3 = 3;
constexpr size_t kKeyHeader3 = 2 + 1 + 8 + 2 + 2 + 4;
constexpr size_t kPackGroups = 32;
constexpr uint32_t kNoBucket = UINT32_MAX;
// Format 4 (from the commit after 37b9d9f) numbers every delta a shard hands over: the
// checkpoint number, one more than the last, carried on from the store at restart.
//   pack   key as format 3; value kStateFormat4 <checkpoint number, varint> <count, varint>
//          then per group <group key, Str> <format 2 value, Str>
//   journal key "g/" kKeyJournal <shard count, 2> <shard, 2> <checkpoint number, 8>, big-endian
//          value kStateFormat4, then records to the end: kRecordGroup <rule id, 8> <pack + 1,
//          varint; 0: none> <group key, Str> <format 2 value, Str>, or kRecordRuleGone <rule id>
// A journal holds the groups whose activation changed since the shard's last checkpoint, all
// under one key: writing each alone (format 2) was a put and a tombstone per activation, and
// RocksDB's flushes cost grows with the number of entries (bench/PROFILE.md). A journal's copy
// of a group is the newest unless its pack was written with a higher number (restore compares
// them); a journal is deleted with the last slice of the first round that began after it, by
// which time every group in it has been written in its pack since.
constexpr uint8_t kStateFormat4 = 4;
constexpr char kKeyJournal = '\x04';
constexpr size_t kKeyHeaderJournal = 2 + 1 + 2 + 2 + 8;
constexpr uint8_t kRecordGroup = 1;
constexpr uint8_t kRecordRuleGone = 2;

// Stands for a rule's name and fingerprint in format 2 keys (stable: it is persisted).
uint64_t RuleStateId(const RuleInfo& info) {
  char fp[8];
  for (int i = 0; i < 8; ++i) fp[i] = static_cast<char>(info.fingerprint >> (8 * i));
  return Fnv1a(std::string_view(fp, 8), Fnv1a(info.name));
}

struct FiringAlert {
  std::string severity, summary;
  SlotList<Label> labels;  // spent slots keep their buffers (a re-firing alert reuses them)
};

// What only some groups need, allocated on first use: the group_by values when they are not just
// the key (numbers, booleans, several fields), and the alerts an active group will resolve.
struct GroupCold {
  std::vector<OwnedValue> gvals;
  // The alerts an active group will resolve: firing[0, nfiring). The slots after are spent ones
  // kept for their buffers, so that an alert firing again records itself without allocating.
  std::vector<FiringAlert> firing;
  size_t nfiring = 0;

  std::span<FiringAlert> Firing() { return {firing.data(), nfiring}; }
  std::span<const FiringAlert> Firing() const { return {firing.data(), nfiring}; }
  // The next slot; its fields hold stale text for the caller to assign over.
  FiringAlert& AddFiring() {
    if (nfiring == firing.size()) firing.emplace_back();
    return firing[nfiring++];
  }
  void SetFiringCount(size_t n) {
    if (n > firing.size()) firing.resize(n);
    nfiring = n;
  }
};

// Ends a window that lives in its group's allocation (NewGroup): the group's block is freed
// with the group.
struct WindowInPlace {
  void operator()(Window* w) const { w->~Window(); }
};

// One rule's state for one group key. A million of these must fit in well under 1 GiB with their
// windows, so the layout is deliberate: the event path touches everything up to `last_event`,
// which lies in the first 128 bytes (the two cache lines GroupTable::PrefetchElement fetches);
// what only activations, templates and checkpoints read comes after or behind `cold`. The group's
// hash is not kept (the table's slot has it; an eviction, rare, hashes the key again). For the
// usual single string group_by (`device`) the one group value is the key itself: it is not stored
// again (`gval_is_key`; read it through GroupValue).
struct Group {
  std::string key;
  uint32_t rule = 0;
  int heap_refs = 0;  // timer entries that point at this group
  bool active = false;
  bool pending = false;
  bool dirty = false;            // changed since it was last written (alone or in its pack)
  bool in_dirty_list = false;
  // (Two bits of one byte: the group stays 136 bytes.)
  bool single_stored : 1 = false;  // a format 2 key of its own (written up to 37b9d9f) is stored
  bool journaled : 1 = false;      // a journal holds a copy newer than its pack's last write
  bool in_changed_list = false;  // its active flag changed since the last TakeChanged/TakeDirty
  bool zombie = false;
  bool gval_is_key = false;  // group_by has one field, and its value is the string `key`
  int64_t last_activity = 0;
  int64_t heap_due = kNever;  // the instant of its live timer entry
  std::unique_ptr<Window, WindowInPlace> window;  // in the group's own allocation (NewGroup)
  int64_t pending_due = kNever;
  int64_t last_seen = 0;
  int64_t period_end = kNever;
  int64_t session_end = kNever;
  int64_t absence_due = kNever;
  std::unique_ptr<Event> last_event;
  std::unique_ptr<GroupCold> cold;
  uint32_t stored_bytes = 0;  // size of its last checkpointed form (vigie_rule_state_bytes)
  uint32_t bucket = kNoBucket;  // its pack: RuleRt::buckets[bucket]
};
// 136 bytes with libstdc++ (a 144-byte malloc chunk; it was 184 bytes, a 192-byte chunk, plus a
// 64-byte chunk for the group value): keep it from growing unnoticed.
static_assert(sizeof(Group) <= 136, "Group grew: see the layout note above");

// A group and, for a windowed rule, its window, in one block: the window's first line follows the
// group's, so the prefetch of a group (GroupTable::PrefetchElement with kLinesWithWindow) brings
// it too, instead of a dependent miss once the group has arrived. Free with FreeGroup.
constexpr size_t kWindowOffset =
    (sizeof(Group) + Window::kInPlaceAlign - 1) / Window::kInPlaceAlign * Window::kInPlaceAlign;
constexpr int kLinesWithWindow = 4;  // a 136-byte group and a 64-byte window, from any 16-byte start

Group* NewGroup(uint32_t rule_index, const Rule& rule) {
  const bool windowed = rule.kind == RuleKind::kWindowed;
  void* mem = ::operator new(windowed ? kWindowOffset + Window::InPlaceSize() : sizeof(Group));
  auto* g = new (mem) Group();
  g->rule = rule_index;
  if (windowed) g->window.reset(Window::MakeAt(static_cast<char*>(mem) + kWindowOffset, &rule.window_layout));
  return g;
}

void FreeGroup(Group* g) {
  g->~Group();
  ::operator delete(g);
}

struct GroupFree {
  void operator()(Group* g) const { FreeGroup(g); }
};
using GroupPtr = std::unique_ptr<Group, GroupFree>;

GroupCold& Cold(Group* g) {
  if (!g->cold) g->cold = std::make_unique<GroupCold>();
  return *g->cold;
}

size_t GroupValueCount(const Group* g) {
  if (g->gval_is_key) return 1;
  return g->cold ? g->cold->gvals.size() : 0;
}

// The group's i-th group_by value (i < GroupValueCount(g)).
Value GroupValue(const Group* g, size_t i) {
  if (g->gval_is_key) return Value::String(g->key);
  return g->cold->gvals[i].view();
}

// Sets the group's values (its key already set): not stored when they are the key itself.
template <class V>
void SetGroupValues(Group* g, const std::vector<V>& vals) {
  auto view = [](const V& v) -> Value {
    if constexpr (std::is_same_v<V, Value>) return v;
    else return v.view();
  };
  if (vals.size() == 1 && view(vals[0]).is_string() && view(vals[0]).str == g->key) {
    g->gval_is_key = true;
    if (g->cold) g->cold->gvals.clear();
    return;
  }
  g->gval_is_key = false;
  if (vals.empty() && !g->cold) return;
  auto& gv = Cold(g).gvals;
  gv.clear();
  gv.reserve(vals.size());
  for (const V& v : vals) gv.emplace_back(view(v));
}

struct TimerEntry {
  int64_t due;
  uint32_t rule;
  uint64_t seq;
  Group* g;
  bool operator>(const TimerEntry& o) const {
    if (due != o.due) return due > o.due;
    if (rule != o.rule) return rule > o.rule;
    return seq > o.seq;
  }
};

// A pack of up to kPackGroups groups, written as one key (format 3). Groups join the first pack
// with room when they are made and keep it until they go.
//
// The event path marks groups dirty, not packs (MarkDirty touches only the group, which is in
// cache): a checkpoint round writes the pack of each dirty group it meets, once per round.
struct Bucket {
  std::vector<Group*> members;
  // The pack as last written, and where its groups' records end (ends[0]: the header's end;
  // group i is [ends[i], ends[i + 1])), for members[0, ends.size() - 1), in that order. A round
  // copies a clean group's record from here instead of serializing it again: most groups of a
  // pack written because one of them changed did not change (PutPack). Cleared when a member
  // leaves (the order changes).
  std::string last;
  std::vector<uint32_t> ends;
  uint32_t round_written = 0;  // the checkpoint round (Impl::round_id) that last wrote it
  uint64_t restored_no = 0;    // at restore: the checkpoint number of the stored pack
  uint64_t journal_no = 0;     // the last journal that holds one of its groups
  bool dirty = false;    // a member joined or left (or the stored pack is stale) since written
  bool in_list = false;  // in Impl::dirty_buckets or Impl::round_buckets
  bool in_free = false;  // in RuleRt::free_buckets
  bool stored = false;   // the store has a pack under its key
};

// One rule's groups. Owns them: a group leaves the table (eviction, reload) as a zombie that the
// engine frees once no timer entry refers to it.
struct RuleRt {
  GroupTable<Group> groups;
  std::vector<Bucket> buckets;
  std::vector<uint32_t> free_buckets;  // buckets with room (new groups join the last)
  RuleRt() = default;
  RuleRt(RuleRt&&) = default;
  RuleRt& operator=(RuleRt&& o) noexcept {
    if (this != &o) {
      Free();
      groups = std::move(o.groups);
      buckets = std::move(o.buckets);
      free_buckets = std::move(o.free_buckets);
    }
    return *this;
  }
  ~RuleRt() { Free(); }
  void Free() {
    for (Group* g : groups.Release()) FreeGroup(g);
  }
};

// The group key of one group_by list for the event being processed, built once per event however
// many rules share the list.
struct GroupsetKey {
  uint64_t epoch = 0;  // == Impl::epoch when built for the current event
  bool ok = false;     // the event has every field
  bool mine = false;   // the key belongs to this shard
  uint64_t hash = 0;
  std::string key;
  std::vector<Value> vals;
};

int ErrorIndex(uint32_t bit) {
  switch (bit) {
    case kErrMissingField: return RuleStats::kMissingField;
    case kErrTypeMismatch: return RuleStats::kTypeMismatch;
    case kErrDivByZero: return RuleStats::kDivByZero;
    case kErrNotBoolean: return RuleStats::kNotBoolean;
    default: return -1;
  }
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

struct Engine::Impl {
  std::shared_ptr<const RuleSet> rs;
  EngineOptions opts;
  std::vector<RuleRt> rt;
  std::shared_ptr<StatsView> stats;
  TimerQueue<TimerEntry> heap;  // rules/timer_queue.h: a binary heap's order, not its misses
  uint64_t seq = 0;
  int64_t now = 0;
  size_t groups_total = 0;

  // Groups changed since their pack was last written, each listed once (in_dirty_list).
  std::vector<Group*> dirty;
  std::vector<Group*> changed;  // groups that activated/deactivated (subset of dirty)
  // Packs to write for another reason than a dirty member (a member left; a stale copy found
  // at restore), each listed once (Bucket::in_list). Rare: not on the event path.
  struct BucketRef {
    uint32_t rule, bucket;
  };
  std::vector<BucketRef> dirty_buckets;
  uint32_t round_id = 0;  // bumped when a round (or a Take) begins: Bucket::round_written
  // Checkpoint numbers (format 4): every delta handed out takes the next one, written in its
  // packs and in its journal's key, so that a restore can tell which copy of a group is newer.
  uint64_t ckpt_no = 0;   // the last number taken (restore carries it on from the store)
  uint64_t delta_no = 0;  // the number of the delta being written
  // Journals still in the store: written since the current round began (or, with no round in
  // progress, since the last Take), and those written before it, which its last slice deletes.
  std::vector<uint64_t> journals_open, journals_round;
  // Rules removed or changed by a reload since the last journal: their ids go in the next one,
  // so that a restore ignores older journal copies of their groups (should the same rule come
  // back while those journals are still stored).
  std::vector<uint64_t> pending_gone;
  // Packs that lost a member whose own key is deleted (Evict): written in the same delta as
  // that delete, so that no crash can leave the group's older copy in its pack alone.
  std::vector<BucketRef> evicted;
  // Restored groups not in a pack yet (restored from their own key, or from a pack written with
  // another shard count): FinishRestore gives them one.
  std::vector<Group*> unbucketed;
  // Packs written with another shard count, whose groups are now spread over this run's shards:
  // deleted by the pipeline's full checkpoint after the restore (TakeForeignKeys).
  std::vector<std::string> foreign_keys;
  std::vector<std::string> pending_deletes;
  std::vector<std::string> pending_prefix_deletes;
  // Format 1 keys of restored groups (Restore), deleted once their groups' format 2 form has
  // been handed out: by the next Take, or at the end of the next complete slice round (the
  // groups were dirty when it began, so its slices hold them). legacy_round: those of the round
  // in progress.
  std::vector<std::string> legacy_keys;
  std::vector<std::string> legacy_round;

  // scratch (reused: no allocation per event in steady state)
  std::vector<uint32_t> matched;
  std::vector<GroupsetKey> gskeys;  // one per rs->groupsets
  std::vector<uint32_t> cands;      // ProcessEvent: the matched rules that reach a group here
  std::vector<Group*> cand_groups;  // ProcessEvent: each cand's group, or null if it has none yet
  uint64_t epoch = 0;               // the current event's number: gskeys built for it have it
  uint64_t epochs = 0;              // the last number given to an event (processed or prepared)
  std::vector<Value> gview;
  std::vector<Value> lets;
  std::vector<Value> aggs;
  std::vector<Value> args;
  EvalScratch scratch;
  EventFields evf;  // the event ProcessEvent runs, by field number; bound to rs->fields

  Impl(std::shared_ptr<const RuleSet> r, const EngineOptions& o) : rs(std::move(r)), opts(o) {
    rt.resize(rs->rules.size());
    SizeKeys(&gskeys);
    matched.reserve(rs->rules.size());  // Match never allocates then
    cands.reserve(rs->rules.size());
    cand_groups.reserve(rs->rules.size());
    stats = MakeStats(rs, nullptr);
    MakePrefixes();
    evf.Bind(&rs->fields);
    BindPlans();
  }

  static std::shared_ptr<StatsView> MakeStats(const std::shared_ptr<const RuleSet>& rules,
                                              const StatsView* old) {
    auto s = std::make_shared<StatsView>();
    s->rules = rules;
    for (size_t i = 0; i < rules->rules.size(); ++i) {
      s->per_rule.push_back(std::make_unique<RuleStats>());
      if (!old) continue;
      // Counters are monotonic for Prometheus: a rule that survives a reload keeps its counts.
      int oi = old->rules->FindRule(rules->rules[i].info.name);
      if (oi < 0) continue;
      const RuleStats& o = *old->per_rule[oi];
      RuleStats& n = *s->per_rule.back();
      n.evaluations = o.evaluations.load();
      n.activations = o.activations.load();
      n.deactivations = o.deactivations.load();
      for (int e = 0; e < RuleStats::kErrorCount_; ++e) n.errors[e] = o.errors[e].load();
    }
    if (old) s->groups = old->groups.load();
    return s;
  }

  RuleStats& St(uint32_t rule) { return *stats->per_rule[rule]; }

  void CountErrors(uint32_t rule, uint32_t bits) {
    while (bits) {
      uint32_t bit = bits & (~bits + 1);
      bits &= bits - 1;
      int idx = ErrorIndex(bit);
      if (idx >= 0) RuleStats::Add(St(rule).errors[idx]);
    }
  }

  void MarkDirty(Group* g) {
    g->dirty = true;
    if (!g->in_dirty_list) {
      g->in_dirty_list = true;
      dirty.push_back(g);
    }
  }

  void MarkBucketDirty(uint32_t rule, uint32_t b) {
    Bucket& B = rt[rule].buckets[b];
    B.dirty = true;
    if (!B.in_list) {
      B.in_list = true;
      dirty_buckets.push_back({rule, b});
    }
  }

  // Puts a new group in the last pack with room (a new pack when none has).
  void JoinBucket(Group* g) {
    RuleRt& r = rt[g->rule];
    if (r.free_buckets.empty()) {
      r.free_buckets.push_back(static_cast<uint32_t>(r.buckets.size()));
      r.buckets.emplace_back().in_free = true;
    }
    const uint32_t b = r.free_buckets.back();
    Bucket& B = r.buckets[b];
    if (B.members.capacity() == 0) B.members.reserve(kPackGroups);
    B.members.push_back(g);
    g->bucket = b;
    if (B.members.size() >= kPackGroups) {
      r.free_buckets.pop_back();
      B.in_free = false;
    }
    // Not dirty yet: a group is written once its state changes (MarkDirty), as before packs.
  }

  void LeaveBucket(Group* g) {
    if (g->bucket == kNoBucket) return;
    RuleRt& r = rt[g->rule];
    Bucket& B = r.buckets[g->bucket];
    auto it = std::find(B.members.begin(), B.members.end(), g);
    if (it != B.members.end()) {
      *it = B.members.back();
      B.members.pop_back();
    }
    B.ends.clear();  // the records no longer follow the members' order
    if (!B.in_free) {
      B.in_free = true;
      r.free_buckets.push_back(g->bucket);
    }
    MarkBucketDirty(g->rule, g->bucket);
    g->bucket = kNoBucket;
  }

  // ---- timers --------------------------------------------------------------------------------

  int64_t Wake(const Group* g) const {
    const Rule& r = rs->rules[g->rule];
    int64_t w = kNever;
    if (g->pending) w = std::min(w, g->pending_due);
    if (r.kind == RuleKind::kAbsence && !g->active) w = std::min(w, g->absence_due);
    if (g->window) {
      if (r.window.kind == WindowSpec::Kind::kSliding) w = std::min(w, g->window->NextExpiry());
      if (r.window.kind == WindowSpec::Kind::kTumbling) w = std::min(w, g->period_end);
      if (r.window.kind == WindowSpec::Kind::kSession) w = std::min(w, g->session_end);
    }
    if (opts.idle_evict_ms > 0 && Evictable(g)) w = std::min(w, g->last_activity + opts.idle_evict_ms);
    return w;
  }

  bool Evictable(const Group* g) const {
    if (g->active || g->pending) return false;
    const Rule& r = rs->rules[g->rule];
    if (r.kind == RuleKind::kAbsence) return g->absence_due == kNever;
    if (g->window && !g->window->Empty()) return false;
    if (g->session_end != kNever) return false;
    return true;
  }

  void Schedule(Group* g) {
    int64_t w = Wake(g);
    if (w == kNever || w >= g->heap_due) return;
    heap.Push(TimerEntry{w, g->rule, ++seq, g});
    g->heap_due = w;
    g->heap_refs++;
  }

  void Fire(int64_t target, OutputSink& out) {
    while (!heap.empty() && heap.Top().due <= target) {
      TimerEntry e = heap.Top();
      heap.Pop();
      Group* g = e.g;
      g->heap_refs--;
      if (g->zombie) {
        MaybeFree(g);
        continue;
      }
      if (e.due != g->heap_due) continue;  // stale: the group re-armed earlier
      g->heap_due = kNever;
      if (e.due > now) now = e.due;
      // Hold a reference across OnWake: it may evict the group, which must not free it under us.
      g->heap_refs++;
      OnWake(g, e.due, target, out);
      g->heap_refs--;
      if (g->zombie) {
        MaybeFree(g);
        continue;
      }
      Schedule(g);
    }
  }

  void MaybeFree(Group* g) {
    if (g->zombie && g->heap_refs == 0 && !g->in_dirty_list && !g->in_changed_list) FreeGroup(g);
  }

  // ---- evaluation ----------------------------------------------------------------------------

  void FillGroupView(const Group* g) {
    const size_t n = GroupValueCount(g);
    gview.resize(n);
    for (size_t i = 0; i < n; ++i) gview[i] = GroupValue(g, i);
  }

  // Prepares ctx for `when` at instant T: group values, aggregates, lets.
  void PrepareContext(Group* g, int64_t T, const Event* ev, EvalContext* ctx) {
    scratch.Reset();
    FillGroupView(g);
    PrepareRest(g->rule, g->window.get(), T, ev, ctx);
  }

  // PrepareContext for a group that does not exist (yet): its values are the event's, k.vals;
  // it has no window (only lazy stateless groups get here).
  void PrepareContextNew(uint32_t rule, const GroupsetKey& k, int64_t T, const Event* ev,
                         EvalContext* ctx) {
    scratch.Reset();
    gview.resize(k.vals.size());
    for (size_t i = 0; i < k.vals.size(); ++i) gview[i] = k.vals[i];
    PrepareRest(rule, nullptr, T, ev, ctx);
  }

  void PrepareRest(uint32_t rule, const Window* window, int64_t T, const Event* ev,
                   EvalContext* ctx) {
    const Rule& r = rs->rules[rule];
    ctx->event = ev;
    ctx->fields = evf.Holds(ev) ? &evf : nullptr;  // a timer's kept event: by name
    ctx->groups = gview.data();
    ctx->now_ms = T;
    ctx->tz = opts.tz;
    ctx->location = opts.location;
    ctx->errors = 0;
    ctx->scratch = &scratch;
    aggs.resize(r.aggs.size());
    if (window != nullptr && !r.aggs.empty()) {
      window->Results(aggs);
      if (window->DistinctOverflow()) RuleStats::Add(St(rule).errors[RuleStats::kDistinctOverflow]);
    }
    ctx->aggs = aggs.data();
    lets.resize(r.lets.size());
    ctx->lets = lets.data();
    for (size_t i = 0; i < r.lets.size(); ++i) lets[i] = Eval(*r.lets[i], *ctx);
  }

  void Transition(Group* g, int64_t T, const Event* ev, EvalContext& ctx, OutputSink& out) {
    const Rule& r = rs->rules[g->rule];
    RuleStats::Add(St(g->rule).evaluations);
    const bool was_pending = g->pending;
    if (!g->active) {
      bool w = EvalCondition(*hot[g->rule].when, ctx);
      if (w) {
        if (r.for_ms == 0) {
          Activate(g, T, ev, ctx, out);
        } else if (!g->pending) {
          g->pending = true;
          g->pending_due = T + r.for_ms;
        }
      } else if (g->pending) {
        g->pending = false;
        g->pending_due = kNever;
      }
    } else {
      const bool deact = r.clear_when ? EvalCondition(*r.clear_when, ctx)
                                      : !EvalCondition(*hot[g->rule].when, ctx);
      if (deact) Deactivate(g, T, ev, ctx, out);
    }
    CountErrors(g->rule, ctx.errors);
    // A stateless group's durable state is its flags, its pending `for` and the event that will
    // fire it, and its firing alerts (Activate/Deactivate mark those): an evaluation that changes
    // none of them has nothing to write. (A group never written is recreated alike at restart.)
    if (r.kind != RuleKind::kStateless || g->pending != was_pending ||
        (g->pending && r.keep_last_event)) {
      MarkDirty(g);
    }
  }

  void RenderTemplate(const Template& t, const Group* g, const Event* ev, const EvalContext& ctx,
                      std::string* s) {
    const Rule& r = rs->rules[g->rule];
    for (const auto& p : t.parts) {
      switch (p.kind) {
        case Template::Part::Kind::kLiteral: s->append(p.text); break;
        case Template::Part::Kind::kGroup: AppendText(s, GroupValue(g, p.index)); break;
        case Template::Part::Kind::kLet: AppendText(s, ctx.lets[p.index]); break;
        case Template::Part::Kind::kRule: s->append(r.info.name); break;
        case Template::Part::Kind::kKey: s->append(g->key); break;
        case Template::Part::Kind::kEvent: {
          Value v = ev ? ev->Get(p.text) : Value::Missing();
          if (v.missing()) RuleStats::Add(St(g->rule).errors[RuleStats::kTemplateMissingField]);
          AppendText(s, v);
          break;
        }
      }
    }
  }

  void RunActions(const std::vector<ActionSpec>& actions, Group* g, int64_t T, const Event* ev,
                  const EvalContext& ctx, bool record_firing, OutputSink& out) {
    const Rule& r = rs->rules[g->rule];
    for (const ActionSpec& a : actions) {
      // Filled in place (assign, append): a recycled output's buffers are reused.
      Output& o = out.NewOutput();
      o.type = a.type;
      o.ts_ms = T;
      o.ingest_ns = ev ? ev->ingest_ns : 0;
      o.rule.assign(r.info.name);
      o.key.assign(g->key);
      if (a.type == OutputType::kCommand) {
        RenderTemplate(a.target, g, ev, ctx, &o.target);
        RenderTemplate(a.action, g, ev, ctx, &o.action);
        for (const ParamSpec& ps : a.params) {
          Param& p = o.params.emplace_back();
          p.name.assign(ps.name);
          p.value = ps.constant;
          if (ps.constant.kind == ParamValue::Kind::kString) {
            p.value.str.clear();
            RenderTemplate(ps.text, g, ev, ctx, &p.value.str);
          }
        }
      } else {
        o.state.assign("firing");
        o.severity.assign(a.severity);
        RenderTemplate(a.summary, g, ev, ctx, &o.summary);
        for (const auto& [name, t] : a.labels) {
          auto& [k, v] = o.labels.emplace_back();
          k.assign(name);
          RenderTemplate(t, g, ev, ctx, &v);
        }
        if (record_firing) {
          FiringAlert& f = Cold(g).AddFiring();
          f.severity.assign(o.severity);
          f.summary.assign(o.summary);
          f.labels.assign(o.labels.begin(), o.labels.end());
        }
      }
      out.Emit(std::move(o));
    }
  }

  void MarkChanged(Group* g) {
    if (!g->in_changed_list) {
      g->in_changed_list = true;
      changed.push_back(g);
    }
  }

  void Activate(Group* g, int64_t T, const Event* ev, const EvalContext& ctx, OutputSink& out) {
    MarkChanged(g);
    g->active = true;
    g->pending = false;
    g->pending_due = kNever;
    RuleStats& st = St(g->rule);
    RuleStats::Add(st.activations);
    st.active_groups.store(st.active_groups.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (g->cold) g->cold->nfiring = 0;
    RunActions(rs->rules[g->rule].then, g, T, ev, ctx, true, out);
    MarkDirty(g);
  }

  void Deactivate(Group* g, int64_t T, const Event* ev, const EvalContext& ctx, OutputSink& out) {
    const Rule& r = rs->rules[g->rule];
    MarkChanged(g);
    g->active = false;
    RuleStats& st = St(g->rule);
    RuleStats::Add(st.deactivations);
    st.active_groups.store(st.active_groups.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    if (g->cold) {
      // Copied, not moved: the firing slots keep their buffers for the next activation.
      for (const FiringAlert& f : g->cold->Firing()) {
        Output& o = out.NewOutput();
        o.type = OutputType::kAlert;
        o.ts_ms = T;
        o.ingest_ns = ev ? ev->ingest_ns : 0;
        o.rule.assign(r.info.name);
        o.key.assign(g->key);
        o.state.assign("resolved");
        o.severity.assign(f.severity);
        o.summary.assign(f.summary);
        o.labels.assign(f.labels.begin(), f.labels.end());
        out.Emit(std::move(o));
      }
      g->cold->nfiring = 0;
    }
    RunActions(r.otherwise, g, T, ev, ctx, false, out);
    MarkDirty(g);
  }

  void OnWake(Group* g, int64_t T, int64_t target, OutputSink& out) {
    const Rule& r = rs->rules[g->rule];
    EvalContext ctx;
    switch (r.kind) {
      case RuleKind::kStateless:
        if (g->pending && g->pending_due <= T) {
          PrepareContext(g, T, g->last_event.get(), &ctx);
          Activate(g, T, g->last_event.get(), ctx, out);
          CountErrors(g->rule, ctx.errors);
        }
        break;
      case RuleKind::kAbsence:
        if (!g->active && g->absence_due <= T) {
          g->absence_due = kNever;
          PrepareContext(g, T, nullptr, &ctx);
          Activate(g, T, nullptr, ctx, out);
        }
        break;
      case RuleKind::kWindowed: {
        if (g->pending && g->pending_due <= T) {
          PrepareContext(g, T, nullptr, &ctx);
          Activate(g, T, nullptr, ctx, out);
          CountErrors(g->rule, ctx.errors);
        }
        if (!g->window) break;
        switch (r.window.kind) {
          case WindowSpec::Kind::kSliding:
            if (g->window->NextExpiry() <= T && g->window->Expire(T)) {
              PrepareContext(g, T, nullptr, &ctx);
              Transition(g, T, nullptr, ctx, out);
            }
            break;
          case WindowSpec::Kind::kTumbling:
            if (g->period_end <= T) {
              bool was_empty = g->window->Empty();
              bool was_active = g->active, was_pending = g->pending;
              PrepareContext(g, T, nullptr, &ctx);
              Transition(g, T, nullptr, ctx, out);
              g->window->Clear();
              const int64_t D = r.window.duration_ms;
              g->period_end = T + D;
              // Consecutive empty periods all evaluate alike (count() = 0, no event): when one
              // changed nothing and the rule does not read the clock, skip to the last one due.
              if (was_empty && !r.reads_clock && was_active == g->active && was_pending == g->pending) {
                int64_t last_close = FloorDiv(target, D) * D;
                if (last_close > g->period_end) g->period_end = last_close;
              }
              MarkDirty(g);
            }
            break;
          case WindowSpec::Kind::kSession:
            if (g->session_end <= T) {
              g->session_end = kNever;
              g->window->Clear();
              PrepareContext(g, T, nullptr, &ctx);
              Transition(g, T, nullptr, ctx, out);
            }
            break;
          default: break;
        }
        break;
      }
    }
    if (opts.idle_evict_ms > 0 && Evictable(g) && g->last_activity + opts.idle_evict_ms <= T) Evict(g);
  }

  void Evict(Group* g) {
    RuleRt& r = rt[g->rule];
    if (!r.groups.Erase(Fnv1a(g->key), g)) return;
    if (g->single_stored || g->journaled || g->dirty) {
      if (g->single_stored) {
        std::string k;
        k.reserve(prefixes[g->rule].size() + g->key.size());  // one allocation
        AppendStateKey(g, &k);
        pending_deletes.push_back(std::move(k));
      }
      g->single_stored = g->journaled = false;
      // Its pack, without it, goes with the next delta: written after the journal that holds
      // the group, it tells a restore that the journal's copy is older; and a group that
      // changed since its pack's write (a deactivation, say, in the same timer pass as the
      // eviction) must not come back as the pack has it.
      if (g->bucket != kNoBucket) evicted.push_back({g->rule, g->bucket});
    }
    LeaveBucket(g);
    SetStoredBytes(g, 0);
    g->zombie = true;
    g->dirty = false;
    AdjustGroups(g->rule, -1);
    // Not freed here: Fire, the only caller (through OnWake), holds a reference and frees it.
  }

  void AdjustGroups(uint32_t rule, int64_t d) {
    RuleStats& st = St(rule);
    st.groups.store(st.groups.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    groups_total += d;
    stats->groups.store(static_cast<int64_t>(groups_total), std::memory_order_relaxed);
  }

  // A new group for key k of `rule`, which has none (ProcessEvent looked it up first).
  Group* Create(uint32_t rule, const GroupsetKey& k) {
    RuleRt& r = rt[rule];
    Group* g = NewGroup(rule, rs->rules[rule]);
    g->key = k.key;
    SetGroupValues(g, k.vals);
    r.groups.Insert(k.hash, g);
    JoinBucket(g);
    AdjustGroups(rule, +1);
    return g;
  }

  // One key per group_by list, with room for their values and usual keys: the arrays rotate
  // between the current event and the prepared ones, and an array may meet a list for the
  // first time long after start (no allocation on the event path then).
  void SizeKeys(std::vector<GroupsetKey>* keys) const {
    keys->assign(rs->groupsets.size(), GroupsetKey{});
    for (size_t i = 0; i < keys->size(); ++i) {
      (*keys)[i].vals.reserve(rs->groupsets[i].size());
      (*keys)[i].key.reserve(kKeyRoom);
    }
  }
  static constexpr size_t kKeyRoom = 64;

  // The key of group_by list `gs` for the current event (evf), built on first use.
  const GroupsetKey& KeyFor(int gs) { return KeyIn(gskeys, epoch, evf, gs); }
  // The same for the event numbered `ep`, read through `f`, with its keys in `keys`.
  const GroupsetKey& KeyIn(std::vector<GroupsetKey>& keys, uint64_t ep, const EventFields& f,
                           int gs) {
    GroupsetKey& k = keys[static_cast<size_t>(gs)];
    if (k.epoch == ep) return k;
    k.epoch = ep;
    k.ok = BuildGroupKey(rs->groupsets[static_cast<size_t>(gs)],
                         rs->groupset_fields[static_cast<size_t>(gs)], f, &k.key, &k.vals);
    if (!k.ok) return k;
    k.hash = Fnv1a(k.key);
    k.mine = opts.shard_count <= 1 ||
             static_cast<int>(k.hash % static_cast<uint64_t>(opts.shard_count)) == opts.shard_index;
    return k;
  }

  // ---- lookahead (Engine::Prepare) -----------------------------------------------------------
  //
  // With a million groups an event's own rules are too few to hide its chain of misses (slot,
  // then group, then window entries: one memory latency each, bench/PROFILE.md). A prepared
  // event has its rules matched and its keys built kLookahead events before it is processed;
  // its slots are asked for then, its groups one event later, and ProcessEvent takes the plan
  // over instead of matching again. Only worth it when the groups outgrow the caches and an
  // event reaches few rules here (with ten, its own passes overlap enough, and the plans'
  // bookkeeping costs): `lookahead` is decided every kGateEvents events from both.
  struct Plan {
    const Event* ev = nullptr;
    uint64_t epoch = 0;
    EventFields evf;
    std::vector<uint32_t> matched;
    std::vector<GroupsetKey> gskeys;
    std::vector<uint32_t> reach;  // matched rules whose group is here (their slots prefetched)
  };
  static constexpr size_t kPlans = Engine::kLookahead + 1;
  std::array<Plan, kPlans> plans;
  size_t plan_head = 0, plan_count = 0;
  bool lookahead = opts.lookahead == EngineOptions::Lookahead::kOn;
  static constexpr uint32_t kGateEvents = 4096;
  static constexpr size_t kLookaheadGroups = 64'000;  // ~50 MiB of groups and windows at ~800 B each
  static constexpr uint32_t kLookaheadRules = 6;        // rules reached per event, on average
  uint32_t gate_events = 0;
  uint64_t gate_reach = 0;

  void BindPlans() {
    DropPrepared();
    for (Plan& p : plans) {
      p.evf.Bind(&rs->fields);
      SizeKeys(&p.gskeys);
      p.matched.reserve(rs->rules.size());
      p.reach.reserve(rs->rules.size());
    }
  }

  void DropPrepared() {
    for (size_t i = 0; i < plan_count; ++i) plans[(plan_head + i) % kPlans].evf.Release();
    plan_head = plan_count = 0;
  }

  void Prepare(const Event& ev) {
    if (!lookahead || plan_count == kPlans) return;
    // The newest plan's slots were asked for one event ago: now its groups.
    if (plan_count > 0) {
      const Plan& prev = plans[(plan_head + plan_count - 1) % kPlans];
      for (uint32_t idx : prev.reach)
        rt[idx].groups.PrefetchElement(prev.gskeys[hot[idx].groupset].hash,
                                       hot[idx].windowed ? kLinesWithWindow : 2);
    }
    Plan& p = plans[(plan_head + plan_count) % kPlans];
    p.ev = &ev;
    p.epoch = ++epochs;
    p.evf.Load(ev);
    rs->MatchTagged(p.evf, &p.matched);
    p.reach.clear();
    for (uint32_t m : p.matched) {
      const uint32_t idx = m >> 1;
      const GroupsetKey& gk = KeyIn(p.gskeys, p.epoch, p.evf, hot[idx].groupset);
      if (!gk.ok || !gk.mine) continue;
      rt[idx].groups.PrefetchSlot(gk.hash);
      p.reach.push_back(idx);
    }
    ++plan_count;
  }

  // Makes `ev` the current event: its plan if it is the oldest prepared one (matched, keys
  // built), else matched here. Plans for later events stay (the lookahead was just switched on,
  // and the events before the first prepared one come first) unless they fill the ring: then
  // the caller went another way, and they go.
  void BeginEvent(const Event& ev) {
    if (plan_count > 0 && plans[plan_head].ev == &ev && plans[plan_head].evf.Holds(&ev)) {
      Plan& p = plans[plan_head];
      std::swap(evf, p.evf);
      std::swap(matched, p.matched);
      std::swap(gskeys, p.gskeys);
      epoch = p.epoch;
      p.evf.Release();
      plan_head = (plan_head + 1) % kPlans;
      --plan_count;
      return;
    }
    if (plan_count == kPlans) DropPrepared();
    // By kind and the rules' leading where tests (rules/index.h): rule << 1 | 1 when the event
    // was found under the test's constants, which then need not be compared again.
    evf.Load(ev);  // its fields by number, for every read below (rules/fields.h)
    rs->MatchTagged(evf, &matched);
    epoch = ++epochs;
  }

  // Every kGateEvents events: is the lookahead worth its bookkeeping now?
  void Gate(size_t reached) {
    gate_reach += reached;
    if (++gate_events < kGateEvents) return;
    switch (opts.lookahead) {
      case EngineOptions::Lookahead::kOn: lookahead = true; break;
      case EngineOptions::Lookahead::kOff: lookahead = false; break;
      case EngineOptions::Lookahead::kAuto:
        lookahead = groups_total >= kLookaheadGroups &&
                    gate_reach <= uint64_t{kLookaheadRules} * gate_events;
        break;
    }
    gate_events = 0;
    gate_reach = 0;
    if (!lookahead) DropPrepared();
  }

  // count_distinct looks its value up in a table that grows with the keys (the loops of a
  // zone): with groups out of cache (the lookahead is on), pass 3 hints it too. The argument
  // sees only the event; pass 4 evaluates it again and counts its errors. Out of line: the
  // pass stays as small as it was where the lookahead is off.
  [[gnu::noinline]] void PrefetchDistinct(uint32_t idx, const Window& w, EvalContext& ctx) {
    const Rule& r = rs->rules[idx];
    const std::vector<uint32_t>& d = r.window_layout.distinct;
    for (size_t i = 0; i < d.size(); ++i) {
      if (!r.aggs[d[i]].arg) continue;
      scratch.Reset();
      w.PrefetchDistinct(i, Eval(*r.aggs[d[i]].arg, ctx));
    }
    ctx.errors = 0;
  }

  [[gnu::noinline]] void PrefetchDistinctAll(EvalContext& ctx) {
    for (size_t ci = 0; ci < cands.size(); ++ci)
      if (hot[cands[ci]].distinct && cand_groups[ci] != nullptr)
        PrefetchDistinct(cands[ci], *cand_groups[ci]->window, ctx);
  }

  void ProcessEvent(const Event& ev, int64_t T, OutputSink& out) {
    BeginEvent(ev);
    EvalContext ctx;
    ctx.event = &ev;
    ctx.fields = &evf;
    ctx.now_ms = T;
    ctx.tz = opts.tz;
    ctx.location = opts.location;
    ctx.scratch = &scratch;
    // Pass 1: the rules this event reaches here (group key and shard, then where), and a
    // prefetch of each one's slot. Pass 2: a prefetch of each group (and its window) the slot
    // points at. Pass 3 (below): the windows' entries. Pass 4: the work, in rule order. At full load the groups of 100 k devices are not in cache; issued
    // one rule at a time, the slot and group misses of an event's 4-5 rules were paid in series
    // (they were most of ProcessEvent's own time). `where` reads only the event, so evaluating it
    // first changes nothing but when its cache misses happen.
    cands.clear();
    // With thousands of rules their `where` code is not in cache: ask for all of it first.
    if (prefetch_rules) {
      for (uint32_t m : matched)
        if (const ExprCode* w = hot[m >> 1].WhereFor(m & 1)) PrefetchCode(w);
    }
    for (uint32_t m : matched) {
      const uint32_t idx = m >> 1;
      const RuleHot& h = hot[idx];
      // Only the shard that owns this rule's group for the event goes on: the one its key hashes
      // to, or shard 0 when the event lacks a group_by field (RouteMask sends it there). An event
      // copied to several shards (rules grouping by different fields) thus has each rule's
      // `where` evaluated, and its errors counted, exactly once. The key is built once per
      // group_by list and event.
      const GroupsetKey& gk = KeyFor(h.groupset);
      if (gk.ok ? !gk.mine : opts.shard_index != 0) continue;
      if (const ExprCode* where = h.WhereFor(m & 1)) {
        scratch.Reset();
        ctx.errors = 0;
        ctx.lets = nullptr;
        ctx.groups = nullptr;
        ctx.aggs = nullptr;
        const bool pass = EvalCondition(*where, ctx);
        CountErrors(idx, ctx.errors);
        if (!pass) continue;
      }
      if (!gk.ok) {
        RuleStats::Add(St(idx).errors[RuleStats::kMissingGroupField]);
        continue;
      }
      rt[idx].groups.PrefetchSlot(gk.hash);
      if (prefetch_rules) {  // pass 3 reads the rule's head, its counters and its `when`
        const char* rule = reinterpret_cast<const char*>(&rs->rules[idx]);
        for (int line = 0; line < 4; ++line) Prefetch(rule + 64 * line);
        Prefetch(stats->per_rule[idx].get());
        if (h.when) PrefetchCode(h.when);
      }
      cands.push_back(idx);
    }
    for (uint32_t idx : cands)
      rt[idx].groups.PrefetchElement(gskeys[hot[idx].groupset].hash,
                                     hot[idx].windowed ? kLinesWithWindow : 2);
    // Pass 3: the groups themselves (the first may wait for its lines; the others have had the
    // time to arrive), and a prefetch of each one's window entries. A windowed rule's chain is
    // slot, group and window (one block: NewGroup), entries: issued rule by rule, the last miss
    // was paid in series. Only the rule's own work makes or removes its groups (evictions happen
    // on timers, not here), so the groups found now are still the ones when pass 4 comes to
    // each rule.
    cand_groups.clear();
    for (uint32_t idx : cands) {
      const GroupsetKey& gk = gskeys[hot[idx].groupset];
      Group* g = rt[idx].groups.Find(gk.hash, gk.key);
      if (g != nullptr && g->window) g->window->PrefetchEntries();
      cand_groups.push_back(g);
    }
    if (lookahead) PrefetchDistinctAll(ctx);
    // Pass 4: the work, in rule order.
    for (size_t ci = 0; ci < cands.size(); ++ci) {
      const uint32_t idx = cands[ci];
      const Rule& r = rs->rules[idx];
      const GroupsetKey& gk = gskeys[static_cast<size_t>(r.groupset)];
      Group* g = cand_groups[ci];
      if (r.kind == RuleKind::kStateless) {
        // A stateless rule keeps nothing but the active flag, its pending `for` with the event
        // that will fire it, and its firing alerts: a group that does not exist is an inactive
        // one with nothing pending. It is made when `when` first holds, not for every (rule,
        // key) an event reaches, so inactive keys cost no memory and no cache miss.
        if (g == nullptr) {
          EvalContext c;
          PrepareContextNew(idx, gk, T, &ev, &c);
          RuleStats::Add(St(idx).evaluations);
          const bool w = EvalCondition(*hot[idx].when, c);
          CountErrors(idx, c.errors);
          if (!w) continue;
          g = Create(idx, gk);
          g->last_activity = T;
          if (r.for_ms == 0) {
            Activate(g, T, &ev, c, out);
          } else {  // as Transition does for an inactive group whose `when` holds
            g->pending = true;
            g->pending_due = T + r.for_ms;
            KeepEvent(g, ev);
            MarkDirty(g);
          }
          Schedule(g);
          continue;
        }
      } else if (g == nullptr) {
        g = Create(idx, gk);
      }
      g->last_activity = T;
      switch (r.kind) {
        case RuleKind::kStateless: {
          EvalContext c;
          PrepareContext(g, T, &ev, &c);
          Transition(g, T, &ev, c, out);
          // The `for` timer's triggering event is the group's most recent one, and only a
          // pending timer reads it: copied while the group is pending, not on every event (at a
          // million groups each copy was a few cache misses, most of them for nothing).
          if (r.keep_last_event && g->pending) KeepEvent(g, ev);
          break;
        }
        case RuleKind::kAbsence: {
          RuleStats::Add(St(idx).evaluations);
          if (g->active) {
            EvalContext c;
            PrepareContext(g, T, &ev, &c);
            Deactivate(g, T, &ev, c, out);
          }
          g->last_seen = T;
          g->absence_due = T + r.absent_for_ms;
          MarkDirty(g);
          break;
        }
        case RuleKind::kWindowed: {
          // Aggregate arguments see only the event.
          args.resize(r.aggs.size());
          scratch.Reset();
          ctx.errors = 0;
          for (size_t i = 0; i < r.aggs.size(); ++i)
            args[i] = r.aggs[i].arg ? Eval(*r.aggs[i].arg, ctx) : Value::Missing();
          CountErrors(idx, ctx.errors & ~kErrMissingField);  // a skipped value is not an error
          const int64_t D = r.window.duration_ms;
          if (r.window.kind == WindowSpec::Kind::kSliding) g->window->Expire(T);
          if (r.window.kind == WindowSpec::Kind::kTumbling && g->period_end == kNever)
            g->period_end = FloorDiv(T, D) * D + D;
          g->window->Add(T, args);
          if (r.window.kind == WindowSpec::Kind::kSession) g->session_end = T + D;
          g->last_seen = T;
          if (r.window.kind != WindowSpec::Kind::kTumbling) {
            EvalContext c;
            PrepareContext(g, T, &ev, &c);
            Transition(g, T, &ev, c, out);
          } else {
            MarkDirty(g);
          }
          break;
        }
      }
      Schedule(g);
    }
    Gate(cands.size());
    evf.Release();
  }

  // A pending `for` group's triggering event, as of `ev` (its buffers reused).
  static void KeepEvent(Group* g, const Event& ev) {
    if (!g->last_event) g->last_event = std::make_unique<Event>();
    CopyEvent(ev, g->last_event.get());
  }
  static void CopyEvent(const Event& src, Event* dst) {
    dst->ts_ms = src.ts_ms;
    dst->has_ts = src.has_ts;
    dst->ingest_ns = src.ingest_ns;
    dst->kind = src.kind;
    dst->fields.resize(src.fields.size());
    for (size_t i = 0; i < src.fields.size(); ++i) {
      dst->fields[i].name = src.fields[i].name;
      dst->fields[i].value.Assign(src.fields[i].value.view());
    }
  }

  // ---- durable state -------------------------------------------------------------------------

  // "g/" 0x02 <rule id> <group key>: the rule id (RuleStateId, 8 bytes) stands for the rule's
  // name and fingerprint, so the prefix deletes of a changed or removed rule (one per shard,
  // written by each shard in its own batch, in any order) cannot touch the state the new
  // definition writes. 11 bytes instead of the name, 16 hex digits and two NULs of format 1:
  // every byte of a key is carried through the WAL, the memtable, flushes and compactions.
  static void RulePrefix(const Rule& r, char format, std::string* k) {
    k->assign(Engine::StatePrefix());
    k->push_back(format);
    const uint64_t id = RuleStateId(r.info);
    for (int i = 7; i >= 0; --i) k->push_back(static_cast<char>(id >> (8 * i)));
  }
  // Rule ids of the current RuleSet (Restore finds a key's rule by it).
  std::unordered_map<uint64_t, uint32_t> rule_by_id;
  // RulePrefix of every rule of rs, made when the rules are (constructor, Swap): a checkpoint
  // writes one key per group, and the prefix is made once, not for each.
  std::vector<std::string> prefixes;
  std::vector<std::string> pack_prefixes;  // the same for format 3: "g/" 0x03 <rule id>
  std::vector<uint64_t> rule_ids;          // RuleStateId of every rule (journal records)
  void MakePrefixes() {
    prefixes.resize(rs->rules.size());
    pack_prefixes.resize(rs->rules.size());
    rule_ids.resize(rs->rules.size());
    rule_by_id.clear();
    for (size_t i = 0; i < rs->rules.size(); ++i) {
      RulePrefix(rs->rules[i], kKeyFormat2, &prefixes[i]);
      RulePrefix(rs->rules[i], kKeyFormat3, &pack_prefixes[i]);
      rule_ids[i] = RuleStateId(rs->rules[i].info);
      rule_by_id.emplace(rule_ids[i], static_cast<uint32_t>(i));
    }
    hot.resize(rs->rules.size());
    size_t bytes = 0;
    for (size_t i = 0; i < rs->rules.size(); ++i) {
      const Rule& r = rs->rules[i];
      hot[i].where = r.where ? CodeOf(*r.where) : nullptr;
      hot[i].when = r.when ? CodeOf(*r.when) : nullptr;
      hot[i].where_rest = r.where_rest ? CodeOf(*r.where_rest) : nullptr;
      hot[i].rest_ok = r.where_rest_ok;
      hot[i].groupset = r.groupset;
      hot[i].windowed = r.kind == RuleKind::kWindowed;
      hot[i].distinct = hot[i].windowed && !r.window_layout.distinct.empty();
      bytes += sizeof(Rule) + sizeof(RuleStats) + sizeof(RuleHot) + CodeBytes(hot[i].where) +
               CodeBytes(hot[i].when);
    }
    prefetch_rules = bytes > kRulesInCache;
  }
  // What the rules read per event fits in a core's L2 below this (the machines we measure on
  // have 512 KiB): prefetching what is already there only costs (100 rules: +4 % per event).
  static constexpr size_t kRulesInCache = 256 * 1024;
  bool prefetch_rules = false;
  // What ProcessEvent reads of each matched rule before its group, 32 bytes a rule instead of a
  // cache miss on the Rule (hundreds of bytes) and more on its expression trees: with thousands
  // of rules these are not in cache, and the pointers let the first pass prefetch them all.
  // Made with the prefixes, when the rules are.
  struct RuleHot {
    const ExprCode* where;
    const ExprCode* where_rest;  // where less its leading test (Rule::where_rest)
    const ExprCode* when;        // null for absence rules
    int groupset;
    bool rest_ok;
    bool windowed;  // its groups carry a window (NewGroup): pass 2 prefetches it with them
    bool distinct;  // its window has count_distinct slots (pass 3 may hint their tables)
    // What to evaluate of `where`: null when nothing (no where, or only a test known to hold).
    const ExprCode* WhereFor(uint32_t known) const {
      return known && rest_ok ? where_rest : where;
    }
  };
  std::vector<RuleHot> hot;
  // Appends the group's own key in the store (format 2) to `k`.
  void AppendStateKey(const Group* g, std::string* k) const {
    k->append(prefixes[g->rule]).append(g->key);
  }
  // Appends the key of this shard's pack `b` of `rule` (format 3) to `k`.
  void AppendPackKey(uint32_t rule, uint32_t b, std::string* k) const {
    k->append(pack_prefixes[rule]);
    const auto sc = static_cast<uint16_t>(opts.shard_count), si = static_cast<uint16_t>(opts.shard_index);
    const char tail[8] = {static_cast<char>(sc >> 8), static_cast<char>(sc),
                          static_cast<char>(si >> 8), static_cast<char>(si),
                          static_cast<char>(b >> 24), static_cast<char>(b >> 16),
                          static_cast<char>(b >> 8), static_cast<char>(b)};
    k->append(tail, sizeof(tail));
  }

  // Appends the key of this shard's journal number `no` to `k`.
  void AppendJournalKey(uint64_t no, std::string* k) const {
    k->append(Engine::StatePrefix());
    k->push_back(kKeyJournal);
    const auto sc = static_cast<uint16_t>(opts.shard_count), si = static_cast<uint16_t>(opts.shard_index);
    char tail[12] = {static_cast<char>(sc >> 8), static_cast<char>(sc), static_cast<char>(si >> 8),
                     static_cast<char>(si)};
    for (int i = 0; i < 8; ++i) tail[4 + i] = static_cast<char>(no >> (8 * (7 - i)));
    k->append(tail, sizeof(tail));
  }

  mutable std::string window_bytes;  // Serialize's scratch for a window (kept: no allocation)

  // Appends the group's value to `out` (the delta's buffer: it grows geometrically).
  void Serialize(const Group* g, std::string* out) const {
    ByteWriter w(out);
    // Format 2: the rule is known from the key (no fingerprint here); instants other than
    // last_seen are written as differences from it, and only those that are set (a bit each in
    // `set`); a group value that is the key itself is not written again.
    w.U8(kStateFormat2);
    w.U8((g->active ? 1 : 0) | (g->pending ? 2 : 0));
    w.I64(g->last_seen);
    const int64_t times[kTimes] = {g->pending_due, g->last_activity, g->period_end,
                                   g->session_end, g->absence_due};
    uint8_t set = 0;
    for (int i = 0; i < kTimes; ++i) set |= times[i] != kNever ? (1u << i) : 0u;
    w.U8(set);
    for (int64_t t : times) {
      // Wrapping difference: any two int64 instants round-trip.
      if (t != kNever) w.I64(static_cast<int64_t>(static_cast<uint64_t>(t) - static_cast<uint64_t>(g->last_seen)));
    }
    if (g->gval_is_key) {
      w.U8(kGroupValueIsKey);
    } else {
      const size_t nv = GroupValueCount(g);
      w.U8(0);
      w.Var(nv);
      for (size_t i = 0; i < nv; ++i) w.Val(GroupValue(g, i));
    }
    w.Var(g->cold ? g->cold->nfiring : 0);
    if (g->cold) {
      for (const auto& f : g->cold->Firing()) {
        w.Str(f.severity);
        w.Str(f.summary);
        w.Var(f.labels.size());
        for (const auto& [k, v] : f.labels) {
          w.Str(k);
          w.Str(v);
        }
      }
    }
    if (g->window) {
      window_bytes.clear();
      g->window->Serialize(&window_bytes);
      w.U8(1);
      w.Str(window_bytes);
    } else {
      w.U8(0);
    }
    if (g->last_event && g->pending) {  // (not pending: nothing will read it)
      const Event& e = *g->last_event;
      w.U8(1);
      w.I64(e.ts_ms);
      w.Str(e.kind);
      w.Var(e.fields.size());
      for (const auto& f : e.fields) {
        w.Str(f.name);
        w.Val(f.value.view());
      }
    } else {
      w.U8(0);
    }
  }

  static int64_t NeverIfNeg(int64_t v) { return v < 0 ? kNever : v; }

  // `format` is the key's: 1 for "g/<name>\0<fingerprint>\0<key>", whose value must carry the
  // same format byte and the rule's fingerprint; 2 for "g/\x02<rule id><key>".
  bool Deserialize(uint32_t rule, const std::string& key, std::string_view in, Group* g,
                   uint8_t format) const {
    const Rule& r = rs->rules[rule];
    ByteReader rd(in);
    uint8_t ver, flags;
    if (!rd.U8(&ver) || ver != format) return false;
    if (format == kStateFormat1) {
      uint64_t fp;
      if (!rd.Fixed64(&fp) || fp != r.info.fingerprint) return false;
    }
    if (!rd.U8(&flags) || flags > 3) return false;
    // Pending means a `for` is running, which only an inactive group of a rule with `for` has:
    // any other pending group is damage (and would fire forever: nothing would clear it).
    if ((flags & 2) && ((flags & 1) || r.for_ms == 0 || r.kind == RuleKind::kAbsence)) return false;
    g->key = key;
    g->rule = rule;
    g->active = flags & 1;
    g->pending = flags & 2;
    if (format == kStateFormat1) {
      int64_t v;
      if (!rd.I64(&v)) return false;
      g->pending_due = NeverIfNeg(v);
      if (!rd.I64(&g->last_seen) || !rd.I64(&g->last_activity)) return false;
      if (!rd.I64(&v)) return false;
      g->period_end = NeverIfNeg(v);
      if (!rd.I64(&v)) return false;
      g->session_end = NeverIfNeg(v);
      if (!rd.I64(&v)) return false;
      g->absence_due = NeverIfNeg(v);
    } else {
      uint8_t set;
      if (!rd.I64(&g->last_seen) || !rd.U8(&set) || set >= (1u << kTimes)) return false;
      int64_t* times[kTimes] = {&g->pending_due, &g->last_activity, &g->period_end,
                                &g->session_end, &g->absence_due};
      for (int i = 0; i < kTimes; ++i) {
        int64_t d = 0;
        if ((set & (1u << i)) && !rd.I64(&d)) return false;
        *times[i] = (set & (1u << i))
                        ? static_cast<int64_t>(static_cast<uint64_t>(g->last_seen) + static_cast<uint64_t>(d))
                        : kNever;
      }
      uint8_t gv;
      if (!rd.U8(&gv) || gv > kGroupValueIsKey) return false;
      if (gv == kGroupValueIsKey) {
        if (r.group_by.size() != 1) return false;
        g->gval_is_key = true;
        return ReadRest(r, rd, g);
      }
    }
    uint64_t n;
    if (!rd.Var(&n) || n != r.group_by.size()) return false;
    std::vector<OwnedValue> gvals(n);
    for (auto& gv : gvals)
      if (!rd.Val(&gv)) return false;
    SetGroupValues(g, gvals);
    return ReadRest(r, rd, g);
  }

  // What follows the group values, alike in both formats.
  bool ReadRest(const Rule& /*r*/, ByteReader& rd, Group* g) const {
    uint64_t n;
    if (!rd.Var(&n) || n > 1000) return false;
    if (n > 0) Cold(g).SetFiringCount(n);
    for (size_t i = 0; i < n; ++i) {
      FiringAlert& f = g->cold->firing[i];
      uint64_t nl;
      if (!rd.Str(&f.severity) || !rd.Str(&f.summary) || !rd.Var(&nl) || nl > 10000) return false;
      f.labels.resize(nl);
      for (auto& [k, lv] : f.labels)
        if (!rd.Str(&k) || !rd.Str(&lv)) return false;
    }
    uint8_t has;
    if (!rd.U8(&has)) return false;
    if (has) {  // (a windowed rule's group has its window from NewGroup, empty)
      std::string_view wb;
      if (!rd.Str(&wb) || !g->window) return false;
      if (!g->window->Deserialize(wb)) return false;
    }
    if (!rd.U8(&has)) return false;
    if (has) {
      auto e = std::make_unique<Event>();
      uint64_t nf;
      if (!rd.I64(&e->ts_ms) || !rd.Str(&e->kind) || !rd.Var(&nf) || nf > 100000) return false;
      e->has_ts = true;
      e->fields.resize(nf);
      for (auto& f : e->fields)
        if (!rd.Str(&f.name) || !rd.Val(&f.value)) return false;
      g->last_event = std::move(e);
    }
    return rd.done();
  }

  // Only the groups whose active flag changed: a cheap checkpoint a shard can take right after
  // an activation, so that a crash soon after does not repeat its `then` at restart. They are
  // written together in one journal (format 4), not in their packs: a pack is up to
  // kPackGroups groups' bytes, and a key each was a RocksDB entry each (and a tombstone later).
  void TakeChangedOnly(StateDelta* d) {
    delta_no = ++ckpt_no;
    // Deletions first (see TakeSlice): an evicted group's key is deleted before a group made
    // again under the same key writes it here.
    TakePendingDeletes(d);
    bool any = !pending_gone.empty();
    for (const Group* g : changed) any = any || (!g->zombie && g->dirty);
    if (any) {
      ByteWriter w = BeginJournal(d);
      // The groups are scattered over the heap, and each was a cache miss (and then its
      // window another): fetch them a few groups ahead, their windows nearer.
      constexpr size_t kGroupsAhead = 8, kWindowsAhead = 4;
      for (size_t i = 0; i < std::min(kGroupsAhead, changed.size()); ++i) PrefetchGroup(changed[i]);
      for (size_t i = 0; i < changed.size(); ++i) {
        if (i + kGroupsAhead < changed.size()) PrefetchGroup(changed[i + kGroupsAhead]);
        if (i + kWindowsAhead < changed.size() && changed[i + kWindowsAhead]->window)
          Prefetch(changed[i + kWindowsAhead]->window.get());
        Group* g = changed[i];
        if (g->zombie || !g->dirty) continue;
        w.U8(kRecordGroup);
        w.Fixed64(rule_ids[g->rule]);
        w.Var(g->bucket == kNoBucket ? 0 : uint64_t{g->bucket} + 1);
        if (g->bucket != kNoBucket) rt[g->rule].buckets[g->bucket].journal_no = delta_no;
        group_bytes.clear();
        Serialize(g, &group_bytes);
        w.Str(g->key);
        w.Str(group_bytes);
        g->journaled = true;  // it stays dirty: its pack is written by the next round
      }
      EndJournal(d);
    }
    // Iterate, then clear: the list keeps its capacity (no regrowth after every checkpoint).
    for (Group* g : changed) {
      g->in_changed_list = false;
      if (g->zombie) MaybeFree(g);
    }
    changed.clear();
  }

  static void PrefetchGroup(const Group* g) {
    Prefetch(g);
    Prefetch(reinterpret_cast<const char*>(g) + 64);
  }

  // Starts this delta's journal in `d`: its key, its format, then the rules gone since the
  // last one. The caller appends group records and calls EndJournal.
  ByteWriter BeginJournal(StateDelta* d) {
    std::string* buf = d->puts.buffer();
    AppendJournalKey(delta_no, buf);
    d->puts.EndKey();
    ByteWriter w(buf);
    w.U8(kStateFormat4);
    for (uint64_t id : pending_gone) {
      w.U8(kRecordRuleGone);
      w.Fixed64(id);
    }
    pending_gone.clear();
    return w;
  }
  void EndJournal(StateDelta* d) {
    d->puts.EndValue();
    journals_open.push_back(delta_no);
  }

  // A journal of the rules gone only (a slice's delta, when a reload came since the last one).
  void PutGoneJournal(StateDelta* d) {
    if (pending_gone.empty()) return;
    BeginJournal(d);
    EndJournal(d);
  }

  // Whether journal `no` may still be in the store (0: none).
  bool JournalLive(uint64_t no) const {
    if (no == 0) return false;
    for (uint64_t j : journals_round)
      if (j <= no) return true;
    for (uint64_t j : journals_open)
      if (j <= no) return true;
    return false;
  }

  void DeleteJournals(std::vector<uint64_t>* nos, StateDelta* d) {
    for (uint64_t no : *nos) {
      std::string k;
      k.reserve(kKeyHeaderJournal);
      AppendJournalKey(no, &k);
      d->deletes.push_back(std::move(k));
    }
    nos->clear();
  }

  void TakePendingDeletes(StateDelta* d) {
    for (auto& p : pending_prefix_deletes) d->delete_prefixes.push_back(std::move(p));
    pending_prefix_deletes.clear();
    for (auto& k : pending_deletes) d->deletes.push_back(std::move(k));
    pending_deletes.clear();
    // The packs of the evicted groups whose own keys were just deleted, in the same delta.
    for (const BucketRef& b : evicted) {
      if (rt[b.rule].buckets[b.bucket].dirty) PutPack(b.rule, b.bucket, d);
    }
    evicted.clear();
  }

  // The current TakeDirtySlice round: the dirty lists as they were when the round began, taken
  // from round[round_pos] and round_buckets[round_bpos] on. A group waiting there keeps
  // in_dirty_list (it is in a list), so it is not queued again in `dirty` if it changes
  // meanwhile: its slice will write it (in its pack) as it is then.
  bool in_round = false;
  std::vector<Group*> round;
  std::vector<BucketRef> round_buckets;
  size_t round_pos = 0, round_bpos = 0;

  // Gives the round's untaken entries back to the dirty lists and ends the round (before
  // anything that walks or rebuilds them: Take, Swap, the destructor).
  void EndRound() {
    if (!in_round) return;
    journals_open.insert(journals_open.end(), journals_round.begin(), journals_round.end());
    journals_round.clear();
    legacy_keys.insert(legacy_keys.end(), std::make_move_iterator(legacy_round.begin()),
                       std::make_move_iterator(legacy_round.end()));
    legacy_round.clear();
    dirty.insert(dirty.end(), round.begin() + static_cast<std::ptrdiff_t>(round_pos), round.end());
    dirty_buckets.insert(dirty_buckets.end(),
                         round_buckets.begin() + static_cast<std::ptrdiff_t>(round_bpos),
                         round_buckets.end());
    round.clear();
    round_buckets.clear();
    round_pos = round_bpos = 0;
    in_round = false;
  }

  // A dirty group's turn in a round: writes its pack, unless this round wrote it already (then
  // the group changed since, and goes to the next round). Returns the groups written.
  size_t TakeGroup(Group* g, StateDelta* d) {
    g->in_dirty_list = false;
    if (g->zombie) {
      MaybeFree(g);
      return 0;
    }
    if (!g->dirty || g->bucket == kNoBucket) return 0;
    const Bucket& B = rt[g->rule].buckets[g->bucket];
    if (B.round_written == round_id) {
      MarkDirty(g);
      return 0;
    }
    PutPack(g->rule, g->bucket, d);
    return B.members.size();
  }

  // The same for a pack listed by itself.
  size_t TakeBucket(BucketRef b, StateDelta* d) {
    Bucket& B = rt[b.rule].buckets[b.bucket];
    B.in_list = false;
    if (!B.dirty) return 0;
    if (B.round_written == round_id) {
      MarkBucketDirty(b.rule, b.bucket);
      return 0;
    }
    PutPack(b.rule, b.bucket, d);
    return std::max<size_t>(B.members.size(), 1);
  }

  bool TakeSlice(StateDelta* d, size_t max_groups) {
    delta_no = ++ckpt_no;
    if (!in_round) {
      in_round = true;
      ++round_id;
      round.swap(dirty);  // `dirty` gets the spent list's capacity: no allocation
      round_buckets.swap(dirty_buckets);
      round_pos = round_bpos = 0;
      legacy_round.swap(legacy_keys);  // (empty but after an upgrade)
      // Every group of these journals is dirty now (in `round`), or was written in its pack
      // after them: the round's last slice can delete them.
      journals_round.swap(journals_open);
    }
    // Deletions first, as a delta applies them before its puts: a group evicted now was put by
    // an earlier slice (an earlier delta); a group re-created under the same key is a new group
    // whose put comes in this slice or a later one.
    TakePendingDeletes(d);
    PutGoneJournal(d);
    const size_t budget = std::max<size_t>(max_groups, 1);
    size_t taken = 0;
    for (; round_pos < round.size() && taken < budget; ++round_pos) taken += TakeGroup(round[round_pos], d);
    for (; round_bpos < round_buckets.size() && taken < budget; ++round_bpos)
      taken += TakeBucket(round_buckets[round_bpos], d);
    if (round_pos < round.size() || round_bpos < round_buckets.size()) return false;
    // Every group restored from a format 1 key when the round began is in this delta or an
    // earlier one (or gone): its format 1 key can go.
    for (auto& k : legacy_round) d->deletes.push_back(std::move(k));
    legacy_round.clear();
    DeleteJournals(&journals_round, d);
    round.clear();
    round_buckets.clear();
    round_pos = round_bpos = 0;
    in_round = false;
    return true;
  }

  void Take(StateDelta* d, bool all) {
    EndRound();  // the whole list is taken: a round in progress is complete
    ++round_id;
    delta_no = ++ckpt_no;
    // Every group of a journal is dirty, or was written in its pack since: this delta writes
    // them all, so no journal is needed (nor the rules gone, which only shadow journals), and
    // packs left empty can go.
    DeleteJournals(&journals_open, d);
    pending_gone.clear();
    for (Group* g : changed) {
      g->in_changed_list = false;
      if (g->zombie) MaybeFree(g);
    }
    changed.clear();
    TakePendingDeletes(d);
    if (all) {
      for (Group* g : dirty) {
        g->in_dirty_list = false;
        if (g->zombie) MaybeFree(g);
      }
      for (const BucketRef& b : dirty_buckets) rt[b.rule].buckets[b.bucket].in_list = false;
      for (uint32_t r = 0; r < rt.size(); ++r) {
        for (uint32_t b = 0; b < rt[r].buckets.size(); ++b) {
          const Bucket& B = rt[r].buckets[b];
          if (!B.members.empty() || B.stored) PutPack(r, b, d, /*fresh=*/true);
        }
      }
    } else {
      // No event comes in between, so nothing taken here is queued again (by index all the
      // same: a queued entry would be kept for the next round, not lost).
      const size_t ng = dirty.size(), nb = dirty_buckets.size();
      for (size_t i = 0; i < ng; ++i) TakeGroup(dirty[i], d);
      for (size_t i = 0; i < nb; ++i) TakeBucket(dirty_buckets[i], d);
      dirty.erase(dirty.begin(), dirty.begin() + static_cast<std::ptrdiff_t>(ng));
      dirty_buckets.erase(dirty_buckets.begin(), dirty_buckets.begin() + static_cast<std::ptrdiff_t>(nb));
    }
    if (all) {
      dirty.clear();  // keeps its capacity
      dirty_buckets.clear();
    }
    // Each group restored from a format 1 key was dirty: it is in this delta (or an earlier one).
    for (auto& k : legacy_keys) d->deletes.push_back(std::move(k));
    legacy_keys.clear();
  }

  mutable std::string group_bytes;  // PutPack's scratch for a member (kept: no allocation)

  // Pack `b` of `rule` whole (format 4, numbered delta_no), and the deletion of its members'
  // own keys (format 2): the pack holds their newest state. An empty pack is written empty, not
  // deleted: its number tells a restore that the journals' copies of the groups that left it
  // are older. A group not changed since the pack was last written is copied from that write,
  // unless `fresh` (TakeAll: everything as it is now).
  void PutPack(uint32_t rule, uint32_t b, StateDelta* d, bool fresh = false) {
    Bucket& B = rt[rule].buckets[b];
    B.dirty = false;
    B.round_written = round_id;
    for (Group* g : B.members) {
      g->journaled = false;  // this copy is newer than the journals'
      if (!g->single_stored) continue;
      std::string k;
      k.reserve(prefixes[rule].size() + g->key.size());
      AppendStateKey(g, &k);
      d->deletes.push_back(std::move(k));
      g->single_stored = false;
    }
    if (B.members.empty()) {
      if (JournalLive(B.journal_no)) {
        // A journal still stored holds a group that has left: the pack is written empty, so
        // that its number tells a restore the journal's copy is older, and deleted by a later
        // round, once that journal is.
        MarkBucketDirty(rule, b);
      } else {
        if (B.stored) {
          std::string k;
          AppendPackKey(rule, b, &k);
          d->deletes.push_back(std::move(k));
          B.stored = false;
        }
        return;
      }
    }
    std::string* buf = d->puts.buffer();
    AppendPackKey(rule, b, buf);
    d->puts.EndKey();
    const size_t start = buf->size();
    ByteWriter w(buf);
    w.U8(kStateFormat4);
    w.Var(delta_no);
    w.Var(B.members.size());
    const size_t cached = fresh || B.ends.empty() ? 0 : B.ends.size() - 1;
    new_ends.clear();
    new_ends.push_back(static_cast<uint32_t>(buf->size() - start));
    for (size_t i = 0; i < B.members.size(); ++i) {
      Group* g = B.members[i];
      const size_t rec = buf->size();
      if (i < cached && !g->dirty) {
        buf->append(B.last, B.ends[i], B.ends[i + 1] - B.ends[i]);
      } else {
        group_bytes.clear();
        Serialize(g, &group_bytes);
        w.Str(g->key);
        w.Str(group_bytes);
      }
      g->dirty = false;
      new_ends.push_back(static_cast<uint32_t>(buf->size() - start));
      // What the group adds to the pack (its share of the key is left out).
      SetStoredBytes(g, buf->size() - rec);
    }
    d->puts.EndValue();
    B.last.assign(*buf, start, buf->size() - start);  // (its capacity is kept: no allocation)
    B.ends.swap(new_ends);
    B.stored = true;
  }
  std::vector<uint32_t> new_ends;  // PutPack's scratch

  void SetStoredBytes(Group* g, size_t bytes) {
    RuleStats& st = St(g->rule);
    int64_t delta = static_cast<int64_t>(bytes) - static_cast<int64_t>(g->stored_bytes);
    st.state_bytes.store(st.state_bytes.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
    g->stored_bytes = static_cast<uint32_t>(bytes);
  }

  // ---- restore -------------------------------------------------------------------------------

  // Makes a restored group live: in its rule's table, counted (not yet in a pack).
  Group* AddRestored(uint32_t rule, GroupPtr g, uint64_t hash, size_t stored) {
    Group* raw = g.release();
    rt[rule].groups.Insert(hash, raw);
    AdjustGroups(rule, +1);
    SetStoredBytes(raw, stored);
    if (raw->active) {
      RuleStats& st = St(rule);
      st.active_groups.store(st.active_groups.load() + 1, std::memory_order_relaxed);
    }
    return raw;
  }

  // Undoes AddRestored for a group that a newer copy replaces. A group still waiting for a pack
  // is only marked (FinishRestoreBuckets frees it); a group in a pack leaves it, and the pack is
  // rewritten without the stale copy.
  void DropRestored(Group* g, uint64_t hash) {
    rt[g->rule].groups.Erase(hash, g);
    AdjustGroups(g->rule, -1);
    SetStoredBytes(g, 0);
    if (g->active) {
      RuleStats& st = St(g->rule);
      st.active_groups.store(st.active_groups.load() - 1, std::memory_order_relaxed);
    }
    g->zombie = true;
    if (g->bucket == kNoBucket) return;  // FinishRestoreBuckets frees it
    LeaveBucket(g);
    MaybeFree(g);  // unless a list holds it (a journal's copy is dirty): then that list does
  }

  // Bucket `b` of `rule`, made (with those before it) if need be.
  Bucket& EnsureBucket(uint32_t rule, uint32_t b) {
    auto& bs = rt[rule].buckets;
    if (bs.size() <= b) bs.resize(static_cast<size_t>(b) + 1);
    return bs[b];
  }

  // The largest bucket index a pack key may carry: 2^18 packs of 32 are 8 million groups of one
  // rule on one shard, several times what fits in memory (about 560 bytes a group). A damaged
  // key cannot make the engine allocate more than 2^18 empty buckets (about 23 MiB); its pack is
  // dropped and deleted instead.
  static constexpr uint32_t kMaxBucket = 1u << 18;

  // A format 3 key. This shard's packs (same shard count, same index) come back as they were;
  // packs of another shard count give each shard the groups that now hash to it, and are
  // deleted by the full checkpoint that the pipeline writes right after the restore.
  bool RestorePack(std::string_view key, std::string_view value) {
    const bool owner_of_stale = opts.shard_index == 0;  // deletes what no shard can read
    if (key.size() != kKeyHeader3) {
      if (owner_of_stale) pending_deletes.emplace_back(key);  // not a key this version writes
      return false;
    }
    auto byte = [&](size_t i) { return static_cast<uint8_t>(key[i]); };
    uint64_t id = 0;
    for (size_t i = 3; i < 11; ++i) id = (id << 8) | byte(i);
    const uint32_t sc = (uint32_t{byte(11)} << 8) | byte(12);
    const uint32_t si = (uint32_t{byte(13)} << 8) | byte(14);
    const uint32_t b = (uint32_t{byte(15)} << 24) | (uint32_t{byte(16)} << 16) |
                       (uint32_t{byte(17)} << 8) | byte(18);
    const bool current = sc == static_cast<uint32_t>(opts.shard_count);
    if (current && si != static_cast<uint32_t>(opts.shard_index)) return false;  // another's
    const bool owner = current || owner_of_stale;
    auto it = rule_by_id.find(id);
    ByteReader rd(value);
    uint8_t ver;
    uint64_t no = 0, n;  // format 3 packs are older than any numbered checkpoint
    if (it == rule_by_id.end() || (current && b >= kMaxBucket) || !rd.U8(&ver) ||
        (ver != kStateFormat3 && ver != kStateFormat4) || (ver == kStateFormat4 && !rd.Var(&no)) ||
        !rd.Var(&n) || n > value.size()) {
      if (owner) pending_deletes.emplace_back(key);  // stale (rule gone or changed) or unreadable
      return false;
    }
    const uint32_t rule = it->second;
    if (!current && owner) foreign_keys.emplace_back(key);
    if (current) {
      Bucket& B = EnsureBucket(rule, b);
      B.stored = true;
      B.restored_no = no;
      ckpt_no = std::max(ckpt_no, no);
    } else {
      foreign_pack_no[{id, sc, si, b}] = no;
    }
    bool any = false;
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view gk, gv;
      if (!rd.Str(&gk) || !rd.Str(&gv)) break;  // the rest is unreadable: rewritten below
      if (opts.shard_count > 1 && ShardOfKey(gk, opts.shard_count) != opts.shard_index) {
        if (current) MarkBucketDirty(rule, b);  // not this shard's group: not in this pack
        continue;
      }
      const uint64_t h = Fnv1a(gk);
      if (Group* have = rt[rule].groups.Find(h, gk)) {
        // Restored from its own key (newer than this copy), or a copy in two packs.
        if (current && have->single_stored && have->bucket == kNoBucket) {
          Join(have, rule, b);  // stays in its pack; the pack's next write deletes its key
          any = true;
        } else if (current) {
          MarkBucketDirty(rule, b);  // rewritten without the stale copy
        }
        continue;
      }
      GroupPtr g(NewGroup(rule, rs->rules[rule]));
      std::string owned(gk);
      if (!Deserialize(rule, owned, gv, g.get(), kStateFormat2)) {
        if (current) MarkBucketDirty(rule, b);
        continue;
      }
      Group* raw = AddRestored(rule, std::move(g), h, gk.size() + gv.size() + 2);
      any = true;
      if (current) {
        Join(raw, rule, b);
      } else {
        raw->dirty = true;
        unbucketed.push_back(raw);
      }
    }
    if (current && !rd.done()) MarkBucketDirty(rule, b);
    return any;
  }

  void Join(Group* g, uint32_t rule, uint32_t b) {
    EnsureBucket(rule, b).members.push_back(g);
    g->bucket = b;
  }

  // Restore keeps the journals, and the numbers of the packs of another shard count, until
  // FinishRestore: a journal's copy of a group is compared with its pack's, which may come in
  // any order.
  struct StoredJournal {
    uint32_t sc, si;
    uint64_t no;
    bool current;
    std::string value;
  };
  std::vector<StoredJournal> restored_journals;
  std::map<std::tuple<uint64_t, uint32_t, uint32_t, uint32_t>, uint64_t> foreign_pack_no;

  bool RestoreJournal(std::string_view key, std::string_view value) {
    const bool owner_of_stale = opts.shard_index == 0;
    if (key.size() != kKeyHeaderJournal) {
      if (owner_of_stale) pending_deletes.emplace_back(key);  // not a key this version writes
      return false;
    }
    auto byte = [&](size_t i) { return static_cast<uint8_t>(key[i]); };
    const uint32_t sc = (uint32_t{byte(3)} << 8) | byte(4);
    const uint32_t si = (uint32_t{byte(5)} << 8) | byte(6);
    uint64_t no = 0;
    for (size_t i = 7; i < 15; ++i) no = (no << 8) | byte(i);
    const bool current = sc == static_cast<uint32_t>(opts.shard_count);
    if (current && si != static_cast<uint32_t>(opts.shard_index)) return false;  // another's
    if (current) {
      journals_open.push_back(no);  // deleted once the first round has written its groups
      ckpt_no = std::max(ckpt_no, no);
    } else if (owner_of_stale) {
      foreign_keys.emplace_back(key);
    }
    restored_journals.push_back({sc, si, no, current, std::string(value)});
    return true;
  }

  // Applies the journals kept by Restore, oldest first: a group's copy there replaces the one
  // restored from its pack unless the pack was written after the journal (a higher number),
  // and unless its rule was reloaded away after it (kRecordRuleGone).
  void ApplyJournals() {
    std::sort(restored_journals.begin(), restored_journals.end(),
              [](const StoredJournal& a, const StoredJournal& b) {
                return std::tie(a.sc, a.si, a.no) < std::tie(b.sc, b.si, b.no);
              });
    GoneRules gone;  // (shard count, shard, rule id) → the journal that says the rule went
    for (const StoredJournal& j : restored_journals) {
      ByteReader rd(j.value);
      uint8_t ver, kind;
      if (!rd.U8(&ver) || ver != kStateFormat4) continue;
      uint64_t id;
      while (rd.U8(&kind)) {
        if (kind == kRecordRuleGone) {
          if (!rd.Fixed64(&id)) break;
          gone[{j.sc, j.si, id}] = j.no;
          continue;
        }
        uint64_t b1;
        std::string_view gk, gv;
        if (kind != kRecordGroup || !rd.Fixed64(&id) || !rd.Var(&b1) || !rd.Str(&gk) ||
            !rd.Str(&gv))
          break;  // the rest is unreadable
      }
    }
    for (const StoredJournal& j : restored_journals) {
      ByteReader rd(j.value);
      uint8_t ver, kind;
      if (!rd.U8(&ver) || ver != kStateFormat4) continue;
      while (rd.U8(&kind)) {
        uint64_t id;
        if (kind == kRecordRuleGone) {
          if (!rd.Fixed64(&id)) break;
          continue;
        }
        uint64_t b1;
        std::string_view gk, gv;
        if (kind != kRecordGroup || !rd.Fixed64(&id) || !rd.Var(&b1) || !rd.Str(&gk) ||
            !rd.Str(&gv))
          break;
        ApplyJournalRecord(j, id, b1, gk, gv, gone);
      }
    }
    restored_journals.clear();
    restored_journals.shrink_to_fit();
    foreign_pack_no.clear();
  }

  using GoneRules = std::map<std::tuple<uint32_t, uint32_t, uint64_t>, uint64_t>;
  void ApplyJournalRecord(const StoredJournal& j, uint64_t id, uint64_t b1, std::string_view gk,
                          std::string_view gv, const GoneRules& gone) {
    auto it = rule_by_id.find(id);
    if (it == rule_by_id.end()) return;  // rule gone or changed
    if (opts.shard_count > 1 && ShardOfKey(gk, opts.shard_count) != opts.shard_index) return;
    auto gi = gone.find({j.sc, j.si, id});
    if (gi != gone.end() && gi->second > j.no) return;  // reloaded away since, then back
    const uint32_t rule = it->second;
    if (b1 != 0 && b1 - 1 < kMaxBucket) {
      const auto b = static_cast<uint32_t>(b1 - 1);
      // The pack's write is the newer one (same number: both copies are of the same moment).
      if (j.current) {
        Bucket& B = EnsureBucket(rule, b);
        B.journal_no = std::max(B.journal_no, j.no);  // not deleted while this journal is kept
        if (B.stored && B.restored_no >= j.no) return;
      } else {
        auto pi = foreign_pack_no.find({id, j.sc, j.si, b});
        if (pi != foreign_pack_no.end() && pi->second >= j.no) return;
      }
    }
    GroupPtr g(NewGroup(rule, rs->rules[rule]));
    std::string owned(gk);
    if (!Deserialize(rule, owned, gv, g.get(), kStateFormat2)) return;
    const uint64_t h = Fnv1a(owned);
    bool legacy_key = false;
    if (Group* old = rt[rule].groups.Find(h, owned)) {
      legacy_key = old->single_stored;
      DropRestored(old, h);
    }
    Group* raw = AddRestored(rule, std::move(g), h, gk.size() + gv.size() + 2);
    raw->single_stored = legacy_key;  // its own key (format 2) goes with its pack's next write
    if (j.current && b1 != 0 && b1 - 1 < kMaxBucket &&
        EnsureBucket(rule, static_cast<uint32_t>(b1 - 1)).members.size() < kPackGroups) {
      // Back in the pack it had when journaled, which the first round writes: in another one, a
      // crash between that round's slices could leave it in neither (its old pack rewritten
      // without it, which makes the journal's copy look older, the new one not yet).
      Join(raw, rule, static_cast<uint32_t>(b1 - 1));
      MarkDirty(raw);
    } else {
      raw->dirty = true;
      unbucketed.push_back(raw);
    }
  }

  // After the last Restore: packs with room take new groups again, and each restored group not
  // yet in a pack joins one (and is written there by the next checkpoint round).
  void FinishRestoreBuckets() {
    for (RuleRt& r : rt) {
      r.free_buckets.clear();
      for (uint32_t b = 0; b < r.buckets.size(); ++b) {
        Bucket& B = r.buckets[b];
        B.in_free = B.members.size() < kPackGroups;
        if (B.in_free) r.free_buckets.push_back(b);
      }
      // Fill the lowest-numbered packs first.
      std::reverse(r.free_buckets.begin(), r.free_buckets.end());
    }
    for (Group* g : unbucketed) {
      if (g->zombie) {
        FreeGroup(g);
        continue;
      }
      if (g->bucket != kNoBucket) continue;  // found in this shard's pack after its own key
      JoinBucket(g);
      MarkDirty(g);
    }
    unbucketed.clear();
  }

  // ---- reload --------------------------------------------------------------------------------

  void Swap(std::shared_ptr<const RuleSet> next) {
    std::vector<RuleRt> nrt(next->rules.size());
    std::vector<bool> kept(rs->rules.size(), false);
    std::vector<uint32_t> new_index(rs->rules.size(), UINT32_MAX);
    for (uint32_t i = 0; i < next->rules.size(); ++i) {
      int oi = rs->FindRule(next->rules[i].info.name);
      if (oi >= 0 && rs->rules[oi].info.fingerprint == next->rules[i].info.fingerprint) {
        nrt[i] = std::move(rt[oi]);  // its groups and their packs
        kept[oi] = true;
        new_index[oi] = i;
        // Windows point at their rule's layout, owned by the RuleSet being replaced.
        nrt[i].groups.ForEach([&](Group* g) {
          g->rule = i;
          if (g->window) g->window->Rebind(&next->rules[i].window_layout);
        });
      }
    }
    // Groups of removed or changed rules go, on disk too.
    for (uint32_t oi = 0; oi < rs->rules.size(); ++oi) {
      if (kept[oi]) continue;
      pending_prefix_deletes.push_back(prefixes[oi]);  // the old set's prefixes, still current
      pending_prefix_deletes.push_back(pack_prefixes[oi]);
      pending_gone.push_back(rule_ids[oi]);
      for (Group* raw : rt[oi].groups.Release()) {
        raw->zombie = true;
        groups_total--;
        if (raw->heap_refs == 0 && !raw->in_dirty_list && !raw->in_changed_list) FreeGroup(raw);
        else zombies.push_back(raw);
      }
    }
    // The heap refers to groups by pointer: rebuild it (reloads are rare). An evicted group that
    // only stale entries kept alive goes with them.
    heap.ForEach([&](const TimerEntry& e) {
      if (e.g->zombie) zombies.push_back(e.g);
    });
    heap.Clear();
    for (Group* z : zombies) z->heap_refs = 0;
    rt = std::move(nrt);
    rs = std::move(next);
    MakePrefixes();
    evf.Bind(&rs->fields);
    BindPlans();
    SizeKeys(&gskeys);
    matched.reserve(rs->rules.size());
    cands.reserve(rs->rules.size());
    cand_groups.reserve(rs->rules.size());
    auto ns = MakeStats(rs, stats.get());
    ns->groups = static_cast<int64_t>(groups_total);
    stats = ns;
    std::vector<Group*> live_changed;
    for (Group* g : changed) {
      if (!g->zombie) {
        live_changed.push_back(g);
        continue;
      }
      g->in_changed_list = false;
      zombies.push_back(g);
    }
    changed.swap(live_changed);
    EndRound();  // the list is rebuilt: a slice round starts over
    // Packs of kept rules follow their rule to its new index; those of the others are gone
    // (the prefix deletes above cover them on disk).
    auto remap = [&](std::vector<BucketRef>* refs) {
      std::vector<BucketRef> live;
      for (BucketRef b : *refs) {
        if (new_index[b.rule] == UINT32_MAX) continue;
        b.rule = new_index[b.rule];
        live.push_back(b);
      }
      refs->swap(live);
    };
    remap(&dirty_buckets);
    remap(&evicted);
    // Zombies in the lists (evicted groups waiting for their round) go too: the heap that
    // might still refer to them was cleared above.
    std::vector<Group*> live_dirty;
    for (Group* g : dirty) {
      if (!g->zombie) {
        live_dirty.push_back(g);
        continue;
      }
      g->in_dirty_list = false;
      zombies.push_back(g);
    }
    dirty.swap(live_dirty);
    std::sort(zombies.begin(), zombies.end());
    zombies.erase(std::unique(zombies.begin(), zombies.end()), zombies.end());
    for (Group* z : zombies) FreeGroup(z);
    zombies.clear();
    for (uint32_t i = 0; i < rt.size(); ++i) {
      RuleStats& st = St(i);
      int64_t active = 0, bytes = 0;
      rt[i].groups.ForEach([&](Group* g) {
        g->heap_due = kNever;
        g->heap_refs = 0;
        active += g->active;
        bytes += g->stored_bytes;
        Schedule(g);
      });
      st.groups = static_cast<int64_t>(rt[i].groups.size());
      st.active_groups = active;
      st.state_bytes = bytes;
    }
  }
  std::vector<Group*> zombies;

  ~Impl() {
    EndRound();
    // Evicted groups that only a timer entry still held.
    std::vector<Group*> zs;
    heap.ForEach([&](const TimerEntry& e) {
      if (e.g->zombie) zs.push_back(e.g);
    });
    heap.Clear();
    for (Group* g : dirty)
      if (g->zombie) zs.push_back(g);
    for (Group* g : changed)
      if (g->zombie) zs.push_back(g);
    std::sort(zs.begin(), zs.end());
    zs.erase(std::unique(zs.begin(), zs.end()), zs.end());
    for (Group* g : zs) FreeGroup(g);
  }
};

Engine::Engine(std::shared_ptr<const RuleSet> rules, const EngineOptions& opts)
    : impl_(std::make_unique<Impl>(std::move(rules), opts)) {}
Engine::~Engine() = default;

void Engine::AdvanceTo(int64_t now_ms, OutputSink& out) {
  impl_->Fire(now_ms, out);
  if (now_ms > impl_->now) impl_->now = now_ms;
}

void Engine::Process(const Event& ev, int64_t t, OutputSink& out) {
  if (t < impl_->now) t = impl_->now;
  AdvanceTo(t, out);
  impl_->ProcessEvent(ev, t, out);
}

void Engine::Prepare(const Event& ev) { impl_->Prepare(ev); }
void Engine::DropPrepared() { impl_->DropPrepared(); }

int64_t Engine::now() const { return impl_->now; }

int64_t Engine::NextTimer() const {
  // Skip stale entries lazily: the top may be stale, which only makes a worker wake early.
  return impl_->heap.empty() ? kNever : impl_->heap.Top().due;
}

void Engine::SwapRules(std::shared_ptr<const RuleSet> rules) { impl_->Swap(std::move(rules)); }
const RuleSet& Engine::rules() const { return *impl_->rs; }
const RuleStats& Engine::stats(size_t i) const { return *impl_->stats->per_rule[i]; }
size_t Engine::group_count() const { return impl_->groups_total; }
std::shared_ptr<const Engine::StatsView> Engine::Stats() const {
  return std::atomic_load(&impl_->stats);
}

void Engine::TakeDirty(StateDelta* delta) { impl_->Take(delta, false); }
bool Engine::TakeDirtySlice(StateDelta* delta, size_t max_groups) {
  return impl_->TakeSlice(delta, max_groups);
}
void Engine::TakeChanged(StateDelta* delta) { impl_->TakeChangedOnly(delta); }
void Engine::TakeAll(StateDelta* delta) { impl_->Take(delta, true); }

bool Engine::Restore(std::string_view key, std::string_view value) {
  Impl& m = *impl_;
  std::string_view p = StatePrefix();
  if (key.size() < p.size() || key.substr(0, p.size()) != p) return false;
  std::string_view rest = key.substr(p.size());
  if (!rest.empty() && rest[0] == kKeyFormat3) return m.RestorePack(key, value);
  if (!rest.empty() && rest[0] == kKeyJournal) return m.RestoreJournal(key, value);
  int idx = -1;
  uint8_t format;
  std::string_view gkey;
  if (!rest.empty() && rest[0] == kKeyFormat2) {
    format = kStateFormat2;
    if (key.size() < kKeyHeader2) {
      m.pending_deletes.emplace_back(key);  // not a key this version writes
      return false;
    }
    uint64_t id = 0;
    for (size_t i = 1; i < 9; ++i) id = (id << 8) | static_cast<uint8_t>(rest[i]);
    gkey = key.substr(kKeyHeader2);
    if (m.opts.shard_count > 1 && ShardOfKey(gkey, m.opts.shard_count) != m.opts.shard_index) return false;
    auto it = m.rule_by_id.find(id);
    if (it != m.rule_by_id.end()) idx = static_cast<int>(it->second);
  } else {
    // Format 1 (written up to 8ca9379): "g/" <name> NUL <fingerprint, 16 hex> NUL <group key>.
    format = kStateFormat1;
    size_t nul = rest.find('\0');
    if (nul == std::string_view::npos || rest.size() < nul + 18 || rest[nul + 17] != '\0') {
      m.pending_deletes.emplace_back(key);  // not a key this version writes
      return false;
    }
    gkey = rest.substr(nul + 18);
    if (m.opts.shard_count > 1 && ShardOfKey(gkey, m.opts.shard_count) != m.opts.shard_index) return false;
    idx = m.rs->FindRule(rest.substr(0, nul));
  }
  GroupPtr g(idx < 0 ? nullptr : NewGroup(static_cast<uint32_t>(idx), m.rs->rules[static_cast<size_t>(idx)]));
  std::string owned_key(gkey);
  if (idx < 0 || !m.Deserialize(static_cast<uint32_t>(idx), owned_key, value, g.get(), format)) {
    m.pending_deletes.emplace_back(key);  // stale (rule gone or changed) or unreadable
    return false;
  }
  const uint64_t h = Fnv1a(owned_key);
  if (Group* old = m.rt[idx].groups.Find(h, owned_key)) {
    // Format 1 keys sort after format 2 and 3 ones: a format 1 key met here was left by a crash
    // after its group's newer form was written, but before the format 1 key was deleted.
    if (format == kStateFormat1) {
      m.pending_deletes.emplace_back(key);
      return false;
    }
    // A group's own key is newer than its copy in a pack (the pack's next write deletes it).
    if (old->single_stored) return false;  // (two own keys of one group cannot be)
    m.DropRestored(old, h);
  }
  Group* raw = m.AddRestored(static_cast<uint32_t>(idx), std::move(g), h, key.size() + value.size());
  if (format == kStateFormat1) {
    // Upgrade: the next checkpoint writes the group in a pack and then deletes this key.
    raw->dirty = true;
    m.legacy_keys.emplace_back(key);
  } else {
    raw->single_stored = true;
  }
  m.unbucketed.push_back(raw);  // its pack's entry, if any, comes later in key order
  return true;
}

void Engine::FinishRestore(int64_t now_ms, OutputSink& out) {
  impl_->ApplyJournals();
  impl_->FinishRestoreBuckets();
  for (auto& r : impl_->rt) r.groups.ForEach([&](Group* g) { impl_->Schedule(g); });
  AdvanceTo(now_ms, out);
}

void Engine::TakeForeignKeys(std::vector<std::string>* keys) {
  for (auto& k : impl_->foreign_keys) keys->push_back(std::move(k));
  impl_->foreign_keys.clear();
}

}  // namespace vigie::rules
