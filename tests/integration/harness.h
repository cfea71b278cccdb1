#pragma once
// Integration harness: runs the REAL `vigie` binary (posix_spawn) over real sockets (ipc:// in a
// temp dir, HTTP on 127.0.0.1:0) and a real RocksDB directory, and talks to it the way gateways,
// dispatch desks and monitoring do.
//
//   TempDir dir;                                   // mkdtemp; removed at scope end
//   Daemon d(dir.path(), DaemonConfig{});          // writes vigie.yaml + rules/00-probe.yaml
//   d.WriteRules("r.yaml", "rules: ...");
//   REQUIRE(d.Start(&err));                        // spawn, wait for the port, /readyz 200
//   Sender in(d.source_endpoint());                // PUSH to the daemon's PULL source
//   Outputs out(d);                                // PULL (push sinks) or SUB (pub sinks)
//   in.Send(R"({"kind": "x", "device": "a"})");
//   REQUIRE(Barrier(in, out));                     // everything sent before has been processed
//   REQUIRE(d.Stop() == 0);                        // SIGTERM, exit code
//
// Barrier: the daemon config runs one shard, so events are processed in the order sent and the
// outputs leave in that order. Every Daemon loads a `probe` rule (rules/00-probe.yaml) that
// answers each {"kind": "probe", "n": K} with a command on "probe/K" AND an alert "probe K";
// once both arrived, every output of an earlier event has arrived on both sinks (each socket is
// FIFO). Tests drop the probe outputs with WithoutProbes().
//
// Waiting: never a fixed sleep; WaitUntil() polls a condition against a deadline. Deadlines are
// generous (CI machines are loaded); a passing run does not wait for them.
//
// Threading: everything here belongs to the test thread. Not thread-safe.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "rules/output.h"

namespace vigie::it {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

// Wall-clock ms since the Unix epoch (what the daemon's engine runs on).
int64_t NowMs();

// Polls pred() every `poll` until it holds (true) or `timeout` passed (false; pred is tried one
// last time at the deadline).
bool WaitUntil(const std::function<bool()>& pred, Ms timeout, Ms poll = 10ms);

// The vigie binary under test (a compile definition, VIGIE_BINARY).
const char* VigieBinary();

// A directory made with mkdtemp under $TMPDIR (or /tmp); removed with its content at scope end
// unless the environment sets VIGIE_IT_KEEP=1.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, std::string_view text);
std::string ReadFile(const std::string& path);  // "" if it cannot be read
std::vector<std::string> Lines(std::string_view text);  // without the newlines; no empty last

// Runs `vigie ARGS...` to completion (stdin from `stdin_file` or /dev/null), stdout and stderr
// captured through files in `dir`. exit_code is -1 if it did not exit within `timeout` (then it
// is killed) and 128+N if killed by signal N.
struct ProcResult {
  int exit_code = -1;
  std::string out, err;
};
ProcResult RunVigie(const std::vector<std::string>& args, const std::string& dir,
                    Ms timeout = 30s, const std::string& stdin_file = "");

// HTTP on 127.0.0.1:port (cpp-httplib). status 0 when the connection failed.
struct HttpReply {
  int status = 0;
  std::string body;
};
HttpReply HttpGet(int port, const std::string& path);
HttpReply HttpPost(int port, const std::string& path);

// Prometheus text exposition (format 0.0.4), parsed and checked: every line is empty, a comment
// or `name{labels} value [timestamp]`; # HELP and # TYPE at most once per family and before its
// first sample; a family's samples are contiguous. Problems go to `errors` ("line N: ...").
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct Metrics {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> counter | gauge | histogram | ...
  std::vector<std::string> errors;
  bool HasFamily(const std::string& family) const { return types.count(family) > 0; }
  // Sum of the samples named `name` whose labels include `labels`; NaN if there is none.
  double Get(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
};
Metrics ParseMetrics(std::string_view text);

// How a test daemon is configured (everything else: vigie.yaml in the daemon's directory).
struct DaemonConfig {
  std::string sink_socket = "push";       // push: nothing lost; pub: topics, drops before SUB
  std::string commands_format = "json";   // json | flatbuffers
  std::string alerts_format = "json";
  std::string checkpoint_interval = "200ms";
  size_t max_message_bytes = 1 << 20;
  int shards = 1;                         // 1: the order of processing is the order sent
  std::string extra_yaml;                 // appended to vigie.yaml as is
};

// The text of the probe rule every Daemon loads (see Barrier above).
extern const char* const kProbeRules;

class Daemon {
 public:
  // `dir` holds vigie.yaml, rules/, state/, the ipc sockets and the logs (stderr-N.log per run).
  Daemon(std::string dir, DaemonConfig cfg = {});
  ~Daemon();  // kill -9 if still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  const std::string& dir() const { return dir_; }
  const DaemonConfig& config() const { return cfg_; }
  std::string rules_dir() const { return dir_ + "/rules"; }
  std::string config_path() const { return dir_ + "/vigie.yaml"; }
  std::string source_endpoint() const { return "ipc://" + dir_ + "/in.sock"; }
  std::string commands_endpoint() const { return "ipc://" + dir_ + "/commands.sock"; }
  std::string alerts_endpoint() const { return "ipc://" + dir_ + "/alerts.sock"; }
  void WriteRules(const std::string& name, std::string_view text) const;
  void RemoveRules(const std::string& name) const;
  // Rewrites vigie.yaml from config() (done by the constructor).
  void WriteConfig() const;

  // Spawns `vigie run --config vigie.yaml`, waits for the "metrics and admin on http://H:P"
  // line on stderr, then for GET /readyz 200. False (with the reason and the stderr text) if the
  // process exits or the deadline passes first.
  bool Start(std::string* error, Ms timeout = 30s);
  // SIGTERM, then waits for the exit: returns the exit code, 128+N if killed by signal N, -1
  // if it did not exit within `timeout` (it is then killed).
  int Stop(Ms timeout = 30s);
  // Waits for the process to exit by itself: exit code as Stop(); -1 on timeout (still running).
  int WaitExit(Ms timeout);
  // kill -9 and reap.
  void Kill9();
  bool Signal(int sig) const;
  bool running();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // The stderr of the current (or last) run.
  std::string Stderr() const;
  Metrics Scrape() const;          // GET /metrics, parsed (errors if it failed)
  double Metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;

 private:
  std::string dir_;
  DaemonConfig cfg_;
  pid_t pid_ = -1;
  int port_ = 0;
  int run_ = 0;
  std::string stderr_path_;
};

// PUSH connected to a daemon source.
class Sender {
 public:
  explicit Sender(const std::string& endpoint);
  void Send(std::string_view bytes);
  void Send(const void* data, size_t size) { Send(std::string_view(static_cast<const char*>(data), size)); }

 private:
  zmq::socket_t sock_;
};

// One output as received from a sink: the two frames, and the payload decoded (JSON or
// FlatBuffers, per the sink's format).
struct Received {
  std::string sink;   // "commands" | "alerts"
  std::string topic;  // first frame
  std::string payload;
  bool decoded = false;
  size_t frames = 0;
  int64_t received_ms = 0;  // NowMs() at receipt
  rules::Output out;
};

// Receives both sinks of a daemon: PULL (push sinks) or SUB to everything (pub sinks).
class Outputs {
 public:
  explicit Outputs(const Daemon& d);
  // Receives until pred(all()) holds or `timeout` passed.
  bool WaitFor(const std::function<bool(const std::vector<Received>&)>& pred, Ms timeout = 20s);
  // Receives whatever arrives within `window` (for "nothing else came" after a barrier).
  void Drain(Ms window = 0ms);
  const std::vector<Received>& all() const { return all_; }
  void Clear() { all_.clear(); }

 private:
  bool PollOnce(Ms timeout);
  zmq::socket_t commands_, alerts_;
  std::string commands_format_, alerts_format_;
  std::vector<Received> all_;
};

// Sends a probe and waits for both of its outputs (see the top comment). A fresh n each call.
bool Barrier(Sender& in, Outputs& out, Ms timeout = 20s);
// For pub sinks: sends probes until one came through on both sinks (the SUBs are connected).
bool Warmup(Sender& in, Outputs& out, Ms timeout = 20s);

// Filters.
std::vector<Received> WithoutProbes(const std::vector<Received>& v);
std::vector<Received> ForRule(const std::vector<Received>& v, const std::string& rule);

// A canonical one-line text of an output without its seq (params and labels sorted by name),
// for comparing outputs whatever the wire format: "command 2026-...Z rule key target action
// {a=s:x,b=n:1}". with_ts=false leaves the ts out.
std::string Canon(const rules::Output& o, bool with_ts = true);
// Parses JSON-line outputs (vigie replay / expected.jsonl). False if a line does not decode.
bool ParseOutputLines(std::string_view text, std::vector<rules::Output>* out, std::string* error);

// The seqs of v in the order received; and whether they are strictly increasing, consecutive.
std::vector<uint64_t> Seqs(const std::vector<Received>& v);
bool Consecutive(const std::vector<uint64_t>& seqs);

}  // namespace vigie::it
