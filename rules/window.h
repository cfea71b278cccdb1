#pragma once
// Per-group window content and its aggregates (RULES.md, "Windows" and "Aggregates").
// One Window per (rule, group), owned by the shard's engine; not thread-safe.
//
// - kSliding keeps entries that leave at their time + D. An entry is one event while the group is
//   slow; when a group is fast, events of the same time slice (pane, <= D/60 and <= 1s unless the
//   rule sets `resolution`) merge into one entry that leaves at its latest event's time + D, so a
//   group's memory is bounded by the number of panes, not by its event rate.
// - kCount keeps the group's last N events.
// - kTumbling and kSession are plain accumulators: Expire() never changes them; the engine knows
//   when a period closes or a session ends and calls Clear().
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rules/expr.h"
#include "rules/value.h"

namespace vigie::rules {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct WindowSpec {
  enum class Kind : uint8_t { kNone, kSliding, kTumbling, kSession, kCount };
  Kind kind = Kind::kNone;
  int64_t duration_ms = 0;    // sliding, tumbling, session
  int64_t count = 0;          // count windows: N
  int64_t resolution_ms = 0;  // sliding: pane length; 0 = DefaultResolution(duration_ms)
};

// Largest of 1000, 500, 250, 200, 100, 50, 25, 20, 10, 5, 2, 1 ms that is <= D/60 (and <= 1 s).
int64_t DefaultResolution(int64_t duration_ms);

// Bounds (documented in docs/rules.md).
constexpr int64_t kMaxCountWindow = 100000;        // `count: N` above this is a load error
constexpr size_t kMaxDistinctPerWindow = 100000;   // count_distinct stops tracking new values past
                                                   // this and reports the bound (counted)

// What every window of one rule shares: the spec and the slot list, split by kind of aggregate
// (numeric partials, first/last, count_distinct). Built once per rule (RuleSet::Finish), immutable
// and read-only afterwards; windows hold a pointer to it instead of a copy each (a million groups
// must fit in about 1 GiB).
struct WindowLayout {
  enum class Mode : uint8_t { kSliding, kCount, kAccumulate };
  struct NumSlot {
    AggFunc func;
    uint32_t slot;  // index in the slot vector (args / results)
    uint32_t off;   // offset in the partial array
  };
  struct FlSlot {
    AggFunc func;
    uint32_t slot;
  };

  WindowLayout() = default;  // kind kNone: no window
  WindowLayout(const WindowSpec& spec, const std::vector<AggFunc>& slots);

  WindowSpec spec;
  std::vector<AggFunc> slots;  // as given (what the durable form checks)
  Mode mode = Mode::kAccumulate;
  int64_t duration = 0;        // >= 0
  int64_t resolution = 1;      // sliding pane length, > 0
  uint64_t max_count = 1;      // count windows: N, clamped to [1, kMaxCountWindow]
  uint64_t state_tag = 0;      // hash of spec and slots: seeds the durable form's checksum
  uint32_t width = 0;          // doubles per numeric partial
  std::vector<NumSlot> num;
  std::vector<FlSlot> fl;
  std::vector<uint32_t> distinct;  // slot indexes of count_distinct
};

class Window {
 public:
  // A window of its own heap block over a shared layout (`layout` is owned by the rule and
  // outlives the window, or until Rebind()); nullptr if the layout's kind is kNone. The engine
  // uses MakeAt (below) instead, with the same layouts.
  static std::unique_ptr<Window> Make(const WindowLayout* layout);
  // Convenience (tests): builds and owns its own layout from `spec` and `*slots` (copied).
  static std::unique_ptr<Window> Make(const WindowSpec& spec, const std::vector<AggFunc>* slots);
  // In place: the engine keeps a group's window in the group's own allocation (one cache miss
  // fewer per event). MakeAt constructs the window in `mem` (InPlaceSize() bytes, aligned to
  // kInPlaceAlign) and returns it, or nullptr if the layout's kind is kNone; the caller ends it
  // with ~Window() and frees `mem` itself.
  static constexpr size_t kInPlaceAlign = 8;
  static size_t InPlaceSize();
  static Window* MakeAt(void* mem, const WindowLayout* layout);
  virtual ~Window() = default;

  // Adds an event at time `ts` (non-decreasing across calls). args[i] is the value of slot i's
  // argument for this event (Missing for count()). Copies what it keeps.
  virtual void Add(int64_t ts, std::span<const Value> args) = 0;
  // Removes the content that has left by `now` (sliding: entries whose leave time <= now).
  // Returns true if the content changed.
  virtual bool Expire(int64_t now) = 0;
  // The next instant at which Expire() would change the content; kNever if none.
  virtual int64_t NextExpiry() const = 0;
  virtual void Clear() = 0;
  // A cache hint for what the next Add and Expire read (the newest and oldest entries and the
  // running aggregate), for a caller that knows it will call them soon. Changes nothing.
  virtual void PrefetchEntries() const = 0;
  // A cache hint for count_distinct slot i (the layout's distinct[i]): where the next Add, with
  // `v` as that slot's argument, looks the value up. Changes nothing.
  virtual void PrefetchDistinct(size_t i, const Value& v) const = 0;
  virtual bool Empty() const = 0;
  // Aggregate results per slot. count and sum of an empty window are 0; the others Missing.
  // String views stay valid until the next mutation of this window.
  virtual void Results(std::span<Value> out) const = 0;
  // True once count_distinct hit kMaxDistinctPerWindow (reported as an error by the engine).
  virtual bool DistinctOverflow() const = 0;

  // Durable form (stable across versions of the binary that share the format byte).
  virtual void Serialize(std::string* out) const = 0;
  virtual bool Deserialize(std::string_view in) = 0;
  // Approximate heap bytes held by this window (per-rule state gauges); the shared layout is
  // not counted.
  virtual size_t MemoryBytes() const = 0;

  // Points the window at another, identical layout (after a reload kept its rule: the old
  // RuleSet that owned the previous layout is about to be freed).
  virtual void Rebind(const WindowLayout* layout) = 0;
};

}  // namespace vigie::rules
