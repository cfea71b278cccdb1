#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/metrics/metrics.h"

using namespace vigie::daemon;

namespace {

// A small validator of the text exposition format 0.0.4: every line is a HELP, a TYPE or a sample
// `name{labels} value`; each family has one HELP and one TYPE, before its samples; the samples
// of a family are contiguous; histogram samples carry the family name plus _bucket/_sum/_count.
// Returns "" if valid, else the first problem.
std::string Validate(const std::string& text) {
  static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  static const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\\\|\\"|\\n)*",?)*\})? )"
      R"((-?[0-9.e+-]+|\+Inf|-Inf|NaN)$)");
  if (!text.empty() && text.back() != '\n') return "no final newline";
  std::istringstream in(text);
  std::string line, family, family_type;
  std::set<std::string> done;
  bool have_help = false;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      if (done.count(m[1])) return "family twice: " + line;
      if (!family.empty()) done.insert(family);
      family = m[1];
      family_type.clear();
      have_help = true;
    } else if (std::regex_match(line, m, type)) {
      if (!have_help || m[1] != family || !family_type.empty()) return "TYPE misplaced: " + line;
      family_type = m[2];
    } else if (std::regex_match(line, m, sample)) {
      if (family_type.empty()) return "sample before TYPE: " + line;
      std::string name = m[1];
      bool ok = name == family;
      if (family_type == "histogram") {
        ok = name == family + "_bucket" || name == family + "_sum" || name == family + "_count";
      }
      if (!ok) return "sample outside its family: " + line;
    } else {
      return "bad line: " + line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("metrics: writer groups families and renders the exact text") {
  MetricsWriter w;
  w.Counter("vigie_events_received_total", "Events received.", {{"source", "zmq:a"}}, 10);
  w.Gauge("vigie_queue_depth", "Events waiting per shard.", {{"shard", "0"}}, 3);
  w.Counter("vigie_events_received_total", "ignored help", {{"source", "zmq:b"}}, 2.5);
  w.Gauge("vigie_queue_depth", "", {{"shard", "1"}}, 0);
  w.Gauge("vigie_queue_depth", "", {}, -1);  // wrong label set is the caller's business
  w.Counter("vigie_queue_depth", "", {}, 1);  // wrong type: dropped
  w.Gauge("vigie_odd", "Help with \\ and\nnewline.",
          {{"rule", "a\"b\\c\nd"}, {"x", ""}}, 1e21);
  const std::string expected =
      "# HELP vigie_events_received_total Events received.\n"
      "# TYPE vigie_events_received_total counter\n"
      "vigie_events_received_total{source=\"zmq:a\"} 10\n"
      "vigie_events_received_total{source=\"zmq:b\"} 2.5\n"
      "# HELP vigie_queue_depth Events waiting per shard.\n"
      "# TYPE vigie_queue_depth gauge\n"
      "vigie_queue_depth{shard=\"0\"} 3\n"
      "vigie_queue_depth{shard=\"1\"} 0\n"
      "vigie_queue_depth -1\n"
      "# HELP vigie_odd Help with \\\\ and\\nnewline.\n"
      "# TYPE vigie_odd gauge\n"
      "vigie_odd{rule=\"a\\\"b\\\\c\\nd\",x=\"\"} 1e+21\n";
  CHECK(w.Render() == expected);
  CHECK(Validate(w.Render()) == "");
}

TEST_CASE("metrics: numbers") {
  auto fmt = [](double v) {
    std::string s;
    AppendMetricValue(&s, v);
    return s;
  };
  CHECK(fmt(0) == "0");
  CHECK(fmt(42) == "42");
  CHECK(fmt(-7) == "-7");
  CHECK(fmt(0.25) == "0.25");
  CHECK(fmt(1.0 / 0.0) == "+Inf");
  CHECK(fmt(-1.0 / 0.0) == "-Inf");
  CHECK(fmt(std::nan("")) == "NaN");
  CHECK(fmt(123456789012.5) == "123456789012.5");
}

TEST_CASE("metrics: histogram buckets, sum, count and merge") {
  Histogram h({0.1, 1, 0.01});  // sorted at construction
  CHECK(h.bounds() == std::vector<double>{0.01, 0.1, 1});
  h.Observe(0.005);
  h.Observe(0.01);  // le is inclusive
  h.Observe(0.5);
  h.Observe(7);
  auto s = h.Snapshot();
  CHECK(s.buckets == std::vector<uint64_t>{2, 2, 3, 4});
  CHECK(s.count() == 4);
  CHECK(s.sum == Approx(7.515));

  Histogram h2({0.01, 0.1, 1});
  h2.Observe(0.05);
  auto total = s;
  REQUIRE(total.Merge(h2.Snapshot()));
  CHECK(total.buckets == std::vector<uint64_t>{2, 3, 4, 5});
  Histogram other({2});
  CHECK_FALSE(total.Merge(other.Snapshot()));

  MetricsWriter w;
  w.Histogram("vigie_event_latency_seconds", "Ingest to processed.", {{"shard", "0"}}, s);
  const std::string expected =
      "# HELP vigie_event_latency_seconds Ingest to processed.\n"
      "# TYPE vigie_event_latency_seconds histogram\n"
      "vigie_event_latency_seconds_bucket{shard=\"0\",le=\"0.01\"} 2\n"
      "vigie_event_latency_seconds_bucket{shard=\"0\",le=\"0.1\"} 2\n"
      "vigie_event_latency_seconds_bucket{shard=\"0\",le=\"1\"} 3\n"
      "vigie_event_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 4\n"
      "vigie_event_latency_seconds_sum{shard=\"0\"} 7.515\n"
      "vigie_event_latency_seconds_count{shard=\"0\"} 4\n";
  CHECK(w.Render() == expected);
  CHECK(Validate(w.Render()) == "");
}

TEST_CASE("metrics: concurrent observes are all counted", "[concurrency]") {
  Histogram h(Histogram::LatencyBounds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 20000; ++i) h.Observe(0.001);
    });
  }
  for (auto& t : threads) t.join();
  auto s = h.Snapshot();
  CHECK(s.count() == 80000);
  CHECK(s.sum == Approx(80.0));
}

TEST_CASE("metrics: registry renders collectors in order; removed ones are gone") {
  MetricsRegistry reg;
  int a = reg.Add([](MetricsWriter& w) { w.Gauge("b_gauge", "B.", {}, 1); });
  reg.Add([](MetricsWriter& w) {
    w.Counter("a_total", "A.", {}, 2);
    w.Gauge("b_gauge", "B.", {{"k", "v"}}, 3);
  });
  CHECK(reg.Render() ==
        "# HELP b_gauge B.\n# TYPE b_gauge gauge\nb_gauge 1\nb_gauge{k=\"v\"} 3\n"
        "# HELP a_total A.\n# TYPE a_total counter\na_total 2\n");
  reg.Remove(a);
  CHECK(reg.Render() ==
        "# HELP a_total A.\n# TYPE a_total counter\na_total 2\n"
        "# HELP b_gauge B.\n# TYPE b_gauge gauge\nb_gauge{k=\"v\"} 3\n");
}

TEST_CASE("metrics: process metrics are present and valid") {
  MetricsWriter w;
  CollectProcessMetrics(w);
  std::string text = w.Render();
  CHECK(Validate(text) == "");
  std::smatch m;
  REQUIRE(std::regex_search(text, m, std::regex(R"(\nprocess_resident_memory_bytes (\d+)\n)")));
  CHECK(std::stod(m[1]) > 1e5);
  REQUIRE(std::regex_search(text, m, std::regex(R"(\nprocess_start_time_seconds ([0-9.e+]+)\n)")));
  double start = std::stod(m[1]);
  double now = static_cast<double>(time(nullptr));
  CHECK(start > now - 3600);
  CHECK(start <= now + 1);
  CHECK(text.find("process_cpu_seconds_total ") != std::string::npos);
  CHECK(text.find("process_open_fds ") != std::string::npos);
}

TEST_CASE("metrics: the validator itself rejects broken text") {
  CHECK(Validate("x 1\n") != "");                                  // no TYPE
  CHECK(Validate("# HELP x X.\n# TYPE x gauge\nx{a=\"b} 1\n") != "");  // unterminated label
  CHECK(Validate("# HELP x X.\n# TYPE x gauge\nx 1\n# HELP y Y.\n# TYPE y gauge\ny 1\n"
                 "# HELP x X.\n# TYPE x gauge\nx 2\n") != "");  // family split
  CHECK(Validate("# HELP x X.\n# TYPE x gauge\ny 1\n") != "");  // sample outside family
}
