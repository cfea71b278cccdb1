#include <catch2/catch.hpp>

#include <fstream>

#include "daemon/config/config.h"
#include "tests/daemon/test_util.h"

using namespace vigie::daemon;

namespace {

const char* kSinks =
    "sources:\n"
    "  - {type: zmq, bind: \"tcp://127.0.0.1:7001\"}\n"
    "sinks:\n"
    "  commands: {type: zmq, bind: \"tcp://127.0.0.1:7002\"}\n"
    "  alerts: {type: zmq, bind: \"tcp://127.0.0.1:7003\"}\n";

std::string Errors(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += e.ToString() + "\n";
  return s;
}

}  // namespace

TEST_CASE("config: the embedded default parses to the documented values") {
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE(ParseConfig(DefaultConfigYaml(), "<embedded>", &c, &errors));
  CHECK(Errors(errors) == "");
  CHECK(c.file == "<embedded>");
  CHECK(c.rules == "config/rules");
  CHECK(c.state_dir == "state");
  CHECK(c.shards == 0);
  CHECK(c.checkpoint_interval_ms == 1000);
  CHECK(c.timezone == "Europe/Paris");
  CHECK(c.location.lat == Approx(47.322));
  CHECK(c.location.lon == Approx(5.041));
  CHECK(c.max_message_bytes == 4194304);
  REQUIRE(c.sources.size() == 1);
  CHECK(c.sources[0].type == "zmq");
  CHECK(c.sources[0].node["bind"].as<std::string>() == "tcp://127.0.0.1:7001");
  CHECK(c.commands_sink.type == "zmq");
  CHECK(c.commands_sink.node["format"].as<std::string>() == "flatbuffers");
  CHECK(c.alerts_sink.node["format"].as<std::string>() == "json");
  CHECK(c.http_listen == "127.0.0.1:9464");
  CHECK(c.queue_capacity == 65536);
  CHECK(c.idle_evict_ms == 0);
  CHECK(c.state_write_mib_per_s == 64);
  CHECK(c.log_level == "info");
}

TEST_CASE("config: every key set, extras included") {
  std::string text = std::string(
                         "rules: /etc/vigie/rules.yaml\n"
                         "state_dir: /var/lib/vigie\n"
                         "shards: 3\n"
                         "checkpoint_interval: 1m30s\n"
                         "timezone: UTC\n"
                         "location: {lat: -33.5, lon: 151}\n"
                         "max_message_bytes: 1024\n"
                         "http: {listen: \"[::1]:0\"}\n"
                         "queue_capacity: 4096\n"
                         "idle_evict: 1h\n"
                         "state_write_mib_per_s: 0\n"
                         "log_level: debug\n") +
                     kSinks;
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE(ParseConfig(text, "v.yaml", &c, &errors));
  CHECK(c.rules == "/etc/vigie/rules.yaml");
  CHECK(c.state_dir == "/var/lib/vigie");
  CHECK(c.shards == 3);
  CHECK(c.checkpoint_interval_ms == 90000);
  CHECK(c.timezone == "UTC");
  CHECK(c.location.lat == -33.5);
  CHECK(c.location.lon == 151);
  CHECK(c.max_message_bytes == 1024);
  CHECK(c.http_listen == "[::1]:0");
  CHECK(c.queue_capacity == 4096);
  CHECK(c.idle_evict_ms == 3600000);
  CHECK(c.state_write_mib_per_s == 0);
  CHECK(c.log_level == "debug");
  CHECK(c.sources[0].line == 7 + 7);  // the flow map on line 14, column 5
  CHECK(c.sources[0].col == 5);
}

TEST_CASE("config: all errors, each at its place") {
  std::string text =
      "shards: -1\n"                               // 1
      "checkpoint_interval: 10\n"                  // 2
      "location: {lat: 91, lon: east}\n"           // 3
      "max_message_bytes: big\n"                   // 4
      "colour: blue\n"                             // 5
      "http: {listen: localhost, port: 80}\n"      // 6
      "sources: {type: zmq}\n"                     // 7
      "sinks:\n"                                   // 8
      "  commands: {bind: x}\n"                    // 9
      "  extra: {type: zmq}\n"                     // 10
      "log_level: loud\n"                          // 11
      "idle_evict: 5 minutes\n"                    // 12
      "shards: 2\n"                                // 13
      "state_write_mib_per_s: 64MiB\n";            // 14
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE_FALSE(ParseConfig(text, "bad.yaml", &c, &errors));
  std::string all = Errors(errors);
  INFO(all);
  auto has = [&](const std::string& prefix) {
    return all.find(prefix) != std::string::npos;
  };
  CHECK(has("bad.yaml:1:9: 'shards' must be an integer from 0 to 64, not '-1'"));
  CHECK(has("bad.yaml:2:22: 'checkpoint_interval': "));
  CHECK(has("bad.yaml:3:17: 'lat' must be a number from -90 to 90, not '91'"));
  CHECK(has("bad.yaml:3:26: 'lon' must be a number from -180 to 180, not 'east'"));
  CHECK(has("bad.yaml:4:20: 'max_message_bytes' must be an integer"));
  CHECK(has("bad.yaml:5:1: unknown key 'colour'"));
  CHECK(has("bad.yaml:6:16: 'http.listen' must be \"host:port\""));
  CHECK(has("bad.yaml:6:27: unknown key 'http.port' (expected listen)"));
  CHECK(has("bad.yaml:7:10: 'sources' must be a list of sources"));
  CHECK(has("bad.yaml:9:13: sink 'commands' has no 'type'"));
  CHECK(has("bad.yaml:10:3: unknown key 'sinks.extra' (expected commands, alerts)"));
  CHECK(has("bad.yaml:9:3: missing sink 'alerts'"));
  CHECK(has("bad.yaml:11:12: 'log_level' must be debug, info, warn or error, not 'loud'"));
  CHECK(has("bad.yaml:12:13: 'idle_evict': "));
  CHECK(has("bad.yaml:13:1: duplicate key 'shards'"));
  CHECK(has("bad.yaml:14:24: 'state_write_mib_per_s' must be an integer from 0 to 1048576, not '64MiB'"));
  CHECK(errors.size() == 16);
}

TEST_CASE("config: YAML syntax errors have their place") {
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE_FALSE(ParseConfig("shards: 1\nsources: [\n  {type: zmq}\nsinks: {\n", "s.yaml", &c,
                            &errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].file == "s.yaml");
  CHECK(errors[0].line >= 2);
  CHECK(errors[0].col >= 1);
  CHECK(errors[0].ToString().rfind("s.yaml:", 0) == 0);
}

TEST_CASE("config: required keys, shapes and empty documents") {
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE_FALSE(ParseConfig("", "e.yaml", &c, &errors));
  CHECK(Errors(errors) ==
        "e.yaml:1:1: missing required key 'sources'\ne.yaml:1:1: missing required key 'sinks'\n");

  errors.clear();
  REQUIRE_FALSE(ParseConfig("- 1\n- 2\n", "l.yaml", &c, &errors));
  CHECK(Errors(errors) == "l.yaml:1:1: the configuration must be a map of keys\n");

  errors.clear();
  REQUIRE_FALSE(ParseConfig(std::string("sources: []\nsinks:\n  commands: {type: \"\"}\n"
                                        "  alerts: zmq\nrules:\n"),
                            "x.yaml", &c, &errors));
  std::string all = Errors(errors);
  INFO(all);
  CHECK(all.find("x.yaml:1:10: 'sources' must list at least one source") != std::string::npos);
  CHECK(all.find("x.yaml:3:20: sink 'commands': 'type' must be a non-empty string") !=
        std::string::npos);
  CHECK(all.find("x.yaml:4:11: sink 'alerts' must be a map with a 'type'") != std::string::npos);
  CHECK(all.find("x.yaml:5:1: 'rules' must be a string") != std::string::npos);
}

TEST_CASE("config: http listen may be empty (no admin server)") {
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE(ParseConfig(std::string("http: {listen: \"\"}\n") + kSinks, "h.yaml", &c, &errors));
  CHECK(c.http_listen.empty());
  REQUIRE(ParseConfig(std::string("idle_evict: 0\n") + kSinks, "h.yaml", &c, &errors));
  CHECK(c.idle_evict_ms == 0);
}

TEST_CASE("config: SplitHostPort") {
  std::string host;
  int port = -1;
  CHECK(SplitHostPort("127.0.0.1:9464", &host, &port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 9464);
  CHECK(SplitHostPort("[::1]:0", &host, &port));
  CHECK(host == "::1");
  CHECK(port == 0);
  CHECK_FALSE(SplitHostPort("localhost", &host, &port));
  CHECK_FALSE(SplitHostPort(":80", &host, &port));
  CHECK_FALSE(SplitHostPort("h:", &host, &port));
  CHECK_FALSE(SplitHostPort("h:65536", &host, &port));
  CHECK_FALSE(SplitHostPort("h:-1", &host, &port));
  CHECK_FALSE(SplitHostPort("::1:80", &host, &port));
}

TEST_CASE("config: LoadConfigFile reads a file or says why not") {
  vigie::daemon::testing::TempDir dir;
  std::string path = dir / "vigie.yaml";
  std::ofstream(path) << "shards: 2\n" << kSinks;
  Config c;
  std::vector<ConfigError> errors;
  REQUIRE(LoadConfigFile(path, &c, &errors));
  CHECK(c.file == path);
  CHECK(c.shards == 2);
  REQUIRE_FALSE(LoadConfigFile(dir / "nope.yaml", &c, &errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].ToString() == dir / "nope.yaml" + ": cannot read: No such file or directory");
}
