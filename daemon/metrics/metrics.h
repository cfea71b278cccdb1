#pragma once
// Metrics: components own their counters (relaxed atomics or per-shard plain counters); this
// module only renders them. A component registers a collector with the MetricsRegistry; on each
// scrape the registry calls every collector with a MetricsWriter, which groups the samples by
// family and renders the Prometheus text exposition format 0.0.4.
//
// Threading: MetricsRegistry is thread-safe (a mutex; the scrape path only). Collectors run on
// the scraping thread (the HTTP server's), one scrape at a time, and must only read what they
// collect (atomics, or values published for the scrape). Histogram::Observe is lock-free and
// safe from any number of threads; it is meant for one writer per instance (e.g. per shard),
// merged at scrape time with HistogramSnapshot::Merge.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vigie::daemon {

// Label name/value pairs, in the order they are rendered. Values are escaped on output.
using Labels = std::vector<std::pair<std::string, std::string>>;

struct HistogramSnapshot {
  std::vector<double> bounds;     // upper bounds, strictly increasing, +Inf excluded
  std::vector<uint64_t> buckets;  // cumulative counts, bounds.size() + 1 (the last is +Inf)
  double sum = 0;
  uint64_t count() const { return buckets.empty() ? 0 : buckets.back(); }
  // Adds `other` into this one (same bounds, or this one empty); false if the bounds differ.
  bool Merge(const HistogramSnapshot& other);
};

// Fixed buckets chosen at construction. Observe() is a binary search plus two relaxed atomic
// updates: no lock, no allocation.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v);
  HistogramSnapshot Snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

  // Buckets for latencies in seconds: 100 us .. 10 s.
  static std::vector<double> LatencyBounds();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative
  std::atomic<double> sum_{0};
};

// Collects one scrape's samples. Samples of a family may come in any order and from several
// collectors: the writer groups them so that each family renders once, with one # HELP and one
// # TYPE line, families in the order they first appeared. The first help text of a family wins;
// a sample whose type differs from its family's first type is dropped.
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; counter names should end in `_total` (the TYPE line
// names the family as given, as format 0.0.4 expects).
class MetricsWriter {
 public:
  void Counter(std::string_view name, std::string_view help, Labels labels, double v);
  void Gauge(std::string_view name, std::string_view help, Labels labels, double v);
  void Histogram(std::string_view name, std::string_view help, Labels labels,
                 const HistogramSnapshot& h);

  // The exposition text of everything written so far.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::string samples;  // rendered sample lines
  };
  Family* FamilyFor(std::string_view name, std::string_view help, Type type);

  std::vector<Family> families_;
  std::map<std::string, size_t, std::less<>> index_;
};

// Appends `v` as Prometheus renders numbers: integers plainly, +Inf, -Inf, NaN, else shortest
// round-trip form.
void AppendMetricValue(std::string* out, double v);
// Escapes a label value: backslash, double quote and newline.
void AppendEscapedLabelValue(std::string* out, std::string_view v);

class MetricsRegistry {
 public:
  using Collector = std::function<void(MetricsWriter&)>;
  // Returns an id for Remove(). Collectors are called in the order they were added.
  int Add(Collector collector);
  // After Remove returns, the collector is not running and will not be called again.
  void Remove(int id);
  // Runs every collector and renders the text.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  int next_id_ = 1;
  std::vector<std::pair<int, Collector>> collectors_;
};

// process_resident_memory_bytes, process_virtual_memory_bytes, process_cpu_seconds_total,
// process_start_time_seconds, process_open_fds, process_max_fds (from /proc/self and getrusage).
// Stateless; safe from any thread.
void CollectProcessMetrics(MetricsWriter& w);

}  // namespace vigie::daemon
