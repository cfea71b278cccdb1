#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "plugins/codec/output_codec.h"
#include "rules/timefmt.h"

extern char** environ;

namespace vigie::it {

namespace fs = std::filesystem;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool WaitUntil(const std::function<bool()>& pred, Ms timeout, Ms poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(poll);
  }
}

const char* VigieBinary() { return VIGIE_BINARY; }

// ---------------------------------------------------------------------------------------------
// Files

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vigie-it-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("VIGIE_IT_KEEP");
  if (keep && std::string(keep) == "1") {
    std::fprintf(stderr, "kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, std::string_view text) {
  // Write then rename, so that a daemon reading the directory never sees half a file.
  std::string tmp = path + ".tmp~";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  fs::rename(tmp, path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    out.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes

namespace {

std::atomic<int> g_spawn_counter{0};

// Spawns the binary with stdin/stdout/stderr redirected; -1 on failure.
pid_t Spawn(const std::vector<std::string>& args, const std::string& in, const std::string& out,
            const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The child starts with default signal dispositions and an empty mask (the test runner may
  // have changed either).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> argv_s;
  argv_s.push_back(VigieBinary());
  for (const auto& a : args) argv_s.push_back(a);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, VigieBinary(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::fprintf(stderr, "posix_spawn %s: %s\n", VigieBinary(), std::strerror(rc));
    return -1;
  }
  return pid;
}

// waitpid with a deadline. Returns the exit code (128+sig if signalled), -1 on timeout.
int WaitPid(pid_t pid, Ms timeout) {
  int status = 0;
  int code = -1;
  WaitUntil(
      [&] {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        }
        if (r < 0 && errno != EINTR) {
          code = -2;
          return true;
        }
        return false;
      },
      timeout, 5ms);
  return code;
}

}  // namespace

ProcResult RunVigie(const std::vector<std::string>& args, const std::string& dir, Ms timeout,
                    const std::string& stdin_file) {
  int n = ++g_spawn_counter;
  std::string out = dir + "/proc-" + std::to_string(n) + ".out";
  std::string err = dir + "/proc-" + std::to_string(n) + ".err";
  ProcResult r;
  pid_t pid = Spawn(args, stdin_file, out, err);
  if (pid < 0) return r;
  r.exit_code = WaitPid(pid, timeout);
  if (r.exit_code == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

// ---------------------------------------------------------------------------------------------
// HTTP

namespace {
HttpReply Request(int port, const std::string& path, bool post) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(20, 0);
  c.set_write_timeout(5, 0);
  auto res = post ? c.Post(path.c_str(), "", "text/plain") : c.Get(path.c_str());
  HttpReply r;
  if (!res) return r;
  r.status = res->status;
  r.body = res->body;
  return r;
}
}  // namespace

HttpReply HttpGet(int port, const std::string& path) { return Request(port, path, false); }
HttpReply HttpPost(int port, const std::string& path) { return Request(port, path, true); }

// ---------------------------------------------------------------------------------------------
// Prometheus text

namespace {

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool IsNameChar(char c) { return IsNameStart(c) || std::isdigit(static_cast<unsigned char>(c)); }

bool ParseValue(std::string_view s, double* v) {
  if (s == "+Inf" || s == "Inf") {
    *v = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    *v = -INFINITY;
    return true;
  }
  if (s == "NaN") {
    *v = NAN;
    return true;
  }
  std::string t(s);
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(t.c_str(), &end);
  return !t.empty() && end == t.c_str() + t.size() && errno == 0;
}

// The family a sample name belongs to, given the families declared so far.
std::string FamilyOf(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    size_t n = std::strlen(suffix);
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) {
      std::string base = name.substr(0, name.size() - n);
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace

double Metrics::Get(const std::string& name, const std::map<std::string, std::string>& labels) const {
  double sum = 0;
  bool any = false;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    sum += s.value;
    any = true;
  }
  return any ? sum : NAN;
}

Metrics ParseMetrics(std::string_view text) {
  Metrics m;
  std::set<std::string> helped, finished;
  std::string current;  // family of the previous sample
  int lineno = 0;
  auto error = [&](const std::string& msg) {
    m.errors.push_back("line " + std::to_string(lineno) + ": " + msg);
  };
  if (!text.empty() && text.back() != '\n') {
    lineno = static_cast<int>(Lines(text).size());
    error("the text does not end with a newline");
  }
  for (const std::string& line : Lines(text)) {
    ++lineno;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream is(line.substr(1));
      std::string word, name;
      is >> word >> name;
      if (word != "HELP" && word != "TYPE") continue;  // a plain comment
      if (name.empty() || !IsNameStart(name[0]) ||
          !std::all_of(name.begin(), name.end(), IsNameChar)) {
        error("bad metric name in # " + word + ": '" + name + "'");
        continue;
      }
      if (word == "HELP") {
        if (!helped.insert(name).second) error("second # HELP for " + name);
      } else {
        std::string type;
        is >> type;
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.count(type)) error("bad type '" + type + "' for " + name);
        if (m.types.count(name)) error("second # TYPE for " + name);
        for (const auto& s : m.samples) {
          if (FamilyOf(s.name, {{name, type}}) == name) {
            error("# TYPE " + name + " after its samples");
            break;
          }
        }
        m.types[name] = type;
      }
      continue;
    }
    // name{labels} value [timestamp]
    Sample s;
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i])) ++i;
    s.name = line.substr(0, i);
    if (s.name.empty() || !IsNameStart(s.name[0])) {
      error("not a sample: '" + line + "'");
      continue;
    }
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      for (;;) {
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        size_t st = i;
        while (i < line.size() && IsNameChar(line[i]) && line[i] != ':') ++i;
        std::string lname = line.substr(st, i - st);
        if (lname.empty() || std::isdigit(static_cast<unsigned char>(lname[0])) || i + 1 >= line.size() ||
            line[i] != '=' || line[i + 1] != '"') {
          ok = false;
          break;
        }
        i += 2;
        std::string val;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '\\' && i < line.size()) {
            char e = line[i++];
            if (e == 'n') val += '\n';
            else if (e == '\\' || e == '"') val += e;
            else {
              ok = false;
              break;
            }
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            val += c;
          }
        }
        if (!ok || !closed) {
          ok = false;
          break;
        }
        if (s.labels.count(lname)) {
          ok = false;
          break;
        }
        s.labels[lname] = val;
        if (i < line.size() && line[i] == ',') ++i;
      }
    }
    if (!ok || i >= line.size() || line[i] != ' ') {
      error("malformed sample: '" + line + "'");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string v, ts, extra;
    rest >> v >> ts >> extra;
    double ignored = 0;
    if (!ParseValue(v, &s.value) || !extra.empty() ||
        (!ts.empty() && !ParseValue(ts, &ignored))) {
      error("bad value in '" + line + "'");
      continue;
    }
    std::string family = FamilyOf(s.name, m.types);
    if (!m.types.count(family)) error("sample " + s.name + " before (or without) its # TYPE");
    if (family != current) {
      if (finished.count(family)) error("samples of " + family + " are not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    m.samples.push_back(std::move(s));
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Daemon

const char* const kProbeRules = R"(rules:
  - name: probe
    description: Test barrier, answers every probe event with a command and an alert.
    on: probe
    group_by: n
    when: true
    then:
      - command: {target: "probe/{n}", action: ping}
      - alert: {severity: info, summary: "probe {n}"}
)";

Daemon::Daemon(std::string dir, DaemonConfig cfg) : dir_(std::move(dir)), cfg_(std::move(cfg)) {
  fs::create_directories(rules_dir());
  WriteRules("00-probe.yaml", kProbeRules);
  WriteConfig();
}

Daemon::~Daemon() {
  if (pid_ > 0) Kill9();
}

void Daemon::WriteConfig() const {
  std::string y;
  y += "rules: \"" + rules_dir() + "\"\n";
  y += "state_dir: \"" + dir_ + "/state\"\n";
  y += "shards: " + std::to_string(cfg_.shards) + "\n";
  y += "checkpoint_interval: " + cfg_.checkpoint_interval + "\n";
  y += "timezone: Europe/Paris\n";
  y += "max_message_bytes: " + std::to_string(cfg_.max_message_bytes) + "\n";
  y += "sources:\n  - {type: zmq, socket: pull, bind: \"" + source_endpoint() + "\", name: in}\n";
  y += "sinks:\n";
  y += "  commands: {type: zmq, socket: " + cfg_.sink_socket + ", bind: \"" + commands_endpoint() +
       "\", format: " + cfg_.commands_format + "}\n";
  y += "  alerts: {type: zmq, socket: " + cfg_.sink_socket + ", bind: \"" + alerts_endpoint() +
       "\", format: " + cfg_.alerts_format + "}\n";
  y += "http: {listen: \"127.0.0.1:0\"}\n";
  y += cfg_.extra_yaml;
  WriteFile(config_path(), y);
}

void Daemon::WriteRules(const std::string& name, std::string_view text) const {
  WriteFile(rules_dir() + "/" + name, text);
}

void Daemon::RemoveRules(const std::string& name) const {
  std::error_code ec;
  fs::remove(rules_dir() + "/" + name, ec);
}

bool Daemon::Start(std::string* error, Ms timeout) {
  if (pid_ > 0) {
    *error = "already running";
    return false;
  }
  ++run_;
  stderr_path_ = dir_ + "/stderr-" + std::to_string(run_) + ".log";
  pid_ = Spawn({"run", "--config", config_path()}, "", dir_ + "/stdout-" + std::to_string(run_) + ".log",
               stderr_path_);
  if (pid_ < 0) {
    *error = "cannot spawn";
    return false;
  }
  port_ = 0;
  int exited = -1;
  const std::string marker = "metrics and admin on http://";
  bool ok = WaitUntil(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          exited = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        }
        if (port_ == 0) {
          std::string err = ReadFile(stderr_path_);
          size_t at = err.find(marker);
          if (at == std::string::npos) return false;
          size_t colon = err.find(':', at + marker.size());
          size_t slash = err.find('/', at + marker.size());
          if (colon == std::string::npos || slash == std::string::npos || colon > slash) return false;
          port_ = std::atoi(err.substr(colon + 1, slash - colon - 1).c_str());
          if (port_ <= 0) return false;
        }
        return HttpGet(port_, "/readyz").status == 200;
      },
      timeout, 10ms);
  if (exited >= 0) {
    pid_ = -1;
    *error = "vigie exited with " + std::to_string(exited) + " before ready; stderr:\n" + Stderr();
    return false;
  }
  if (!ok) {
    *error = "vigie not ready within the deadline (port " + std::to_string(port_) + "); stderr:\n" +
             Stderr();
    Kill9();
    return false;
  }
  return true;
}

int Daemon::Stop(Ms timeout) {
  if (pid_ <= 0) return -3;
  kill(pid_, SIGTERM);
  int code = WaitPid(pid_, timeout);
  if (code == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
  return code;
}

int Daemon::WaitExit(Ms timeout) {
  if (pid_ <= 0) return -3;
  int code = WaitPid(pid_, timeout);
  if (code != -1) pid_ = -1;
  return code;
}

void Daemon::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool Daemon::Signal(int sig) const { return pid_ > 0 && kill(pid_, sig) == 0; }

bool Daemon::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string Daemon::Stderr() const { return stderr_path_.empty() ? "" : ReadFile(stderr_path_); }

Metrics Daemon::Scrape() const {
  HttpReply r = HttpGet(port_, "/metrics");
  if (r.status != 200) {
    Metrics m;
    m.errors.push_back("GET /metrics: status " + std::to_string(r.status));
    return m;
  }
  return ParseMetrics(r.body);
}

double Daemon::Metric(const std::string& name, const std::map<std::string, std::string>& labels) const {
  return Scrape().Get(name, labels);
}

// ---------------------------------------------------------------------------------------------
// Sockets

namespace {
zmq::context_t& Ctx() {
  static zmq::context_t* ctx = new zmq::context_t(1);  // never destroyed: exit cannot hang
  return *ctx;
}
}  // namespace

Sender::Sender(const std::string& endpoint) : sock_(Ctx(), zmq::socket_type::push) {
  sock_.set(zmq::sockopt::linger, 0);
  sock_.set(zmq::sockopt::sndhwm, 100000);
  sock_.connect(endpoint);
}

void Sender::Send(std::string_view bytes) {
  sock_.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none);
}

Outputs::Outputs(const Daemon& d)
    : commands_(Ctx(), d.config().sink_socket == "pub" ? zmq::socket_type::sub : zmq::socket_type::pull),
      alerts_(Ctx(), d.config().sink_socket == "pub" ? zmq::socket_type::sub : zmq::socket_type::pull),
      commands_format_(d.config().commands_format),
      alerts_format_(d.config().alerts_format) {
  for (zmq::socket_t* s : {&commands_, &alerts_}) {
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::rcvhwm, 1000000);
    if (d.config().sink_socket == "pub") s->set(zmq::sockopt::subscribe, "");
  }
  commands_.connect(d.commands_endpoint());
  alerts_.connect(d.alerts_endpoint());
}

bool Outputs::PollOnce(Ms timeout) {
  zmq::pollitem_t items[] = {{commands_.handle(), 0, ZMQ_POLLIN, 0},
                             {alerts_.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 2, timeout);
  bool any = false;
  for (int i = 0; i < 2; ++i) {
    if (!(items[i].revents & ZMQ_POLLIN)) continue;
    zmq::socket_t& s = i == 0 ? commands_ : alerts_;
    const std::string& format = i == 0 ? commands_format_ : alerts_format_;
    for (;;) {
      std::vector<zmq::message_t> frames;
      for (;;) {
        zmq::message_t m;
        auto r = s.recv(m, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
        if (!r) break;
        bool more = m.more();
        frames.push_back(std::move(m));
        if (!more) break;
      }
      if (frames.empty()) break;
      any = true;
      Received rc;
      rc.sink = i == 0 ? "commands" : "alerts";
      rc.frames = frames.size();
      rc.received_ms = NowMs();
      rc.topic = frames.front().to_string();
      rc.payload = frames.back().to_string();
      rc.decoded = format == "flatbuffers" ? codec::DecodeOutputFlatbuffers(rc.payload, &rc.out)
                                           : codec::DecodeOutputJson(rc.payload, &rc.out);
      all_.push_back(std::move(rc));
    }
  }
  return any;
}

bool Outputs::WaitFor(const std::function<bool(const std::vector<Received>&)>& pred, Ms timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred(all_)) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    auto left = std::chrono::duration_cast<Ms>(deadline - now);
    PollOnce(std::min<Ms>(left, 50ms));
  }
}

void Outputs::Drain(Ms window) {
  const auto deadline = std::chrono::steady_clock::now() + window;
  while (PollOnce(0ms)) {
  }
  while (std::chrono::steady_clock::now() < deadline) {
    PollOnce(std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now()));
  }
}

namespace {
std::atomic<int64_t> g_probe{0};

bool HasProbe(const std::vector<Received>& v, int64_t n) {
  const std::string target = "probe/" + std::to_string(n);
  const std::string summary = "probe " + std::to_string(n);
  bool cmd = false, alert = false;
  for (const auto& r : v) {
    if (r.out.rule != "probe") continue;
    if (r.sink == "commands" && r.out.target == target) cmd = true;
    if (r.sink == "alerts" && r.out.summary == summary) alert = true;
  }
  return cmd && alert;
}

void SendProbe(Sender& in, int64_t n) {
  in.Send(R"({"kind": "probe", "n": )" + std::to_string(n) + "}");
}
}  // namespace

bool Barrier(Sender& in, Outputs& out, Ms timeout) {
  const int64_t n = ++g_probe + 1000000 * (NowMs() % 1000);  // unique within and across runs
  SendProbe(in, n);
  return out.WaitFor([&](const std::vector<Received>& v) { return HasProbe(v, n); }, timeout);
}

bool Warmup(Sender& in, Outputs& out, Ms timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<int64_t> sent;
  while (std::chrono::steady_clock::now() < deadline) {
    const int64_t n = ++g_probe + 1000000 * (NowMs() % 1000);
    sent.push_back(n);
    SendProbe(in, n);
    bool ok = out.WaitFor(
        [&](const std::vector<Received>& v) {
          for (int64_t k : sent)
            if (HasProbe(v, k)) return true;
          return false;
        },
        200ms);
    if (ok) return true;
  }
  return false;
}

std::vector<Received> WithoutProbes(const std::vector<Received>& v) {
  std::vector<Received> out;
  for (const auto& r : v)
    if (r.out.rule != "probe") out.push_back(r);
  return out;
}

std::vector<Received> ForRule(const std::vector<Received>& v, const std::string& rule) {
  std::vector<Received> out;
  for (const auto& r : v)
    if (r.out.rule == rule) out.push_back(r);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Outputs as text

namespace {
std::string ParamText(const rules::ParamValue& v) {
  char buf[64];
  switch (v.kind) {
    case rules::ParamValue::Kind::kNull: return "null";
    case rules::ParamValue::Kind::kNumber:
      std::snprintf(buf, sizeof buf, "n:%.17g", v.num);
      return buf;
    case rules::ParamValue::Kind::kString: return "s:" + v.str;
    case rules::ParamValue::Kind::kBool: return v.b ? "b:true" : "b:false";
    case rules::ParamValue::Kind::kJson: return "j:" + v.str;
  }
  return "?";
}
}  // namespace

std::string Canon(const rules::Output& o, bool with_ts) {
  std::string s = o.type == rules::OutputType::kCommand ? "command" : "alert";
  if (with_ts) s += " " + rules::FormatRfc3339Ms(o.ts_ms);
  s += " rule=" + o.rule + " key=" + o.key;
  if (o.type == rules::OutputType::kCommand) {
    s += " target=" + o.target + " action=" + o.action + " params={";
    std::vector<std::string> ps;
    for (const auto& p : o.params) ps.push_back(p.name + "=" + ParamText(p.value));
    std::sort(ps.begin(), ps.end());
    for (size_t i = 0; i < ps.size(); ++i) s += (i ? "," : "") + ps[i];
    s += "}";
  } else {
    s += " state=" + o.state + " severity=" + o.severity + " summary=" + o.summary + " labels={";
    auto ls = o.labels;
    std::sort(ls.begin(), ls.end());
    for (size_t i = 0; i < ls.size(); ++i) s += (i ? "," : "") + ls[i].first + "=" + ls[i].second;
    s += "}";
  }
  return s;
}

bool ParseOutputLines(std::string_view text, std::vector<rules::Output>* out, std::string* error) {
  int n = 0;
  for (const std::string& line : Lines(text)) {
    ++n;
    if (line.empty()) continue;
    rules::Output o;
    if (!codec::DecodeOutputJson(line, &o)) {
      *error = "line " + std::to_string(n) + " is not an output: " + line;
      return false;
    }
    out->push_back(std::move(o));
  }
  return true;
}

std::vector<uint64_t> Seqs(const std::vector<Received>& v) {
  std::vector<uint64_t> s;
  for (const auto& r : v) s.push_back(r.out.seq);
  return s;
}

bool Consecutive(const std::vector<uint64_t>& seqs) {
  std::vector<uint64_t> s = seqs;
  std::sort(s.begin(), s.end());
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i] != s[i - 1] + 1) return false;
  return true;
}

}  // namespace vigie::it
