#include "daemon/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

namespace vigie::daemon {

// ---- numbers and escaping ----

void AppendMetricValue(std::string* out, double v) {
  if (std::isnan(v)) {
    *out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    *out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    out->append(buf, r.ptr);
    return;
  }
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendEscapedLabelValue(std::string* out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '"': *out += "\\\""; break;
      case '\n': *out += "\\n"; break;
      default: *out += c;
    }
  }
}

namespace {

void AppendEscapedHelp(std::string* out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      default: *out += c;
    }
  }
}

// name{l1="v1",l2="v2"[,extra="x"]} value\n
void AppendSample(std::string* out, std::string_view name, const Labels& labels,
                  const char* extra_name, std::string_view extra_value, double v) {
  out->append(name);
  if (!labels.empty() || extra_name != nullptr) {
    *out += '{';
    bool first = true;
    for (const auto& [k, val] : labels) {
      if (!first) *out += ',';
      first = false;
      *out += k;
      *out += "=\"";
      AppendEscapedLabelValue(out, val);
      *out += '"';
    }
    if (extra_name != nullptr) {
      if (!first) *out += ',';
      *out += extra_name;
      *out += "=\"";
      AppendEscapedLabelValue(out, extra_value);
      *out += '"';
    }
    *out += '}';
  }
  *out += ' ';
  AppendMetricValue(out, v);
  *out += '\n';
}

}  // namespace

// ---- histogram ----

bool HistogramSnapshot::Merge(const HistogramSnapshot& other) {
  if (buckets.empty()) {
    *this = other;
    return true;
  }
  if (other.buckets.empty()) return true;
  if (bounds != other.bounds || buckets.size() != other.buckets.size()) return false;
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
  sum += other.sum;
  return true;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  while (!bounds_.empty() && std::isinf(bounds_.back())) bounds_.pop_back();
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // First bucket whose upper bound is >= v (Prometheus buckets are "le").
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  if (std::isnan(v)) i = bounds_.size();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.buckets.resize(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += counts_[i].load(std::memory_order_relaxed);
    s.buckets[i] = acc;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> Histogram::LatencyBounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
}

// ---- writer ----

MetricsWriter::Family* MetricsWriter::FamilyFor(std::string_view name, std::string_view help,
                                                Type type) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    Family& f = families_[it->second];
    return f.type == type ? &f : nullptr;
  }
  index_.emplace(std::string(name), families_.size());
  families_.push_back(Family{std::string(name), std::string(help), type, {}});
  return &families_.back();
}

void MetricsWriter::Counter(std::string_view name, std::string_view help, Labels labels,
                            double v) {
  if (Family* f = FamilyFor(name, help, Type::kCounter)) {
    AppendSample(&f->samples, name, labels, nullptr, {}, v);
  }
}

void MetricsWriter::Gauge(std::string_view name, std::string_view help, Labels labels, double v) {
  if (Family* f = FamilyFor(name, help, Type::kGauge)) {
    AppendSample(&f->samples, name, labels, nullptr, {}, v);
  }
}

void MetricsWriter::Histogram(std::string_view name, std::string_view help, Labels labels,
                              const HistogramSnapshot& h) {
  Family* f = FamilyFor(name, help, Type::kHistogram);
  if (f == nullptr) return;
  std::string bucket_name(name);
  bucket_name += "_bucket";
  std::string le;
  for (size_t i = 0; i < h.bounds.size() && i < h.buckets.size(); ++i) {
    le.clear();
    AppendMetricValue(&le, h.bounds[i]);
    AppendSample(&f->samples, bucket_name, labels, "le", le, static_cast<double>(h.buckets[i]));
  }
  uint64_t count = h.count();
  AppendSample(&f->samples, bucket_name, labels, "le", "+Inf", static_cast<double>(count));
  AppendSample(&f->samples, std::string(name) + "_sum", labels, nullptr, {}, h.sum);
  AppendSample(&f->samples, std::string(name) + "_count", labels, nullptr, {},
               static_cast<double>(count));
}

std::string MetricsWriter::Render() const {
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    AppendEscapedHelp(&out, f.help);
    out += "\n# TYPE ";
    out += f.name;
    switch (f.type) {
      case Type::kCounter: out += " counter\n"; break;
      case Type::kGauge: out += " gauge\n"; break;
      case Type::kHistogram: out += " histogram\n"; break;
    }
    out += f.samples;
  }
  return out;
}

// ---- registry ----

int MetricsRegistry::Add(Collector collector) {
  std::lock_guard<std::mutex> lock(mu_);
  int id = next_id_++;
  collectors_.emplace_back(id, std::move(collector));
  return id;
}

void MetricsRegistry::Remove(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.erase(std::remove_if(collectors_.begin(), collectors_.end(),
                                   [id](const auto& c) { return c.first == id; }),
                    collectors_.end());
}

std::string MetricsRegistry::Render() const {
  MetricsWriter w;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, fn] : collectors_) fn(w);
  return w.Render();
}

// ---- process metrics ----

namespace {

bool ReadSmallFile(const char* path, std::string* out) {
  FILE* f = fopen(path, "r");
  if (f == nullptr) return false;
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  out->assign(buf, n);
  return true;
}

}  // namespace

void CollectProcessMetrics(MetricsWriter& w) {
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::string text;
  if (ReadSmallFile("/proc/self/statm", &text)) {
    unsigned long long vsz = 0, rss = 0;
    if (sscanf(text.c_str(), "%llu %llu", &vsz, &rss) == 2) {
      w.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}, vsz * page);
      w.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", {}, rss * page);
    }
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    w.Counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", {},
              cpu);
  }
  // Start time: field 22 of /proc/self/stat (ticks since boot) + btime of /proc/stat.
  std::string stat, sys;
  if (ReadSmallFile("/proc/self/stat", &stat) && ReadSmallFile("/proc/stat", &sys)) {
    size_t close = stat.rfind(')');  // the command name may contain spaces and parentheses
    const char* btime = strstr(sys.c_str(), "btime ");
    if (close != std::string::npos && btime != nullptr) {
      // After ") " comes field 3 (state); starttime is field 22, i.e. the 20th from there.
      const char* p = stat.c_str() + close + 2;
      for (int field = 3; field < 22 && *p; ++field) {
        p = strchr(p, ' ');
        if (p == nullptr) break;
        ++p;
      }
      unsigned long long start_ticks = 0, boot = 0;
      if (p != nullptr && sscanf(p, "%llu", &start_ticks) == 1 &&
          sscanf(btime + 6, "%llu", &boot) == 1) {
        w.Gauge("process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.", {},
                static_cast<double>(boot) + start_ticks / ticks);
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    int n = 0;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    w.Gauge("process_open_fds", "Number of open file descriptors.", {}, n - 1);  // minus d's own
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    w.Gauge("process_max_fds", "Maximum number of open file descriptors.", {},
            static_cast<double>(rl.rlim_cur));
  }
}

}  // namespace vigie::daemon
