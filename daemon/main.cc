// vigie: reads argv and nothing else; every subcommand is a function of daemon/cli.h or app.h.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "daemon/app.h"
#include "daemon/cli.h"
#include "daemon/util/malloc_tuning.h"

int main(int argc, char** argv) {
  CLI::App app{"vigie — a real-time rules daemon for smart cities"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vigie 0.1.0");

  std::string run_config;
  auto* run = app.add_subcommand("run", "Run the daemon (SIGHUP reloads the rules, SIGTERM/SIGINT stop cleanly)");
  run->add_option("--config,-c", run_config,
                  "Configuration file (default: config/vigie.yaml, else the embedded default)");

  std::vector<std::string> check_paths;
  auto* check = app.add_subcommand("check", "Load rules files or directories as the daemon would, and report problems");
  check->add_option("paths", check_paths, "Rules files or directories")->required();

  vigie::daemon::ReplayArgs replay_args;
  std::string until;
  auto* replay = app.add_subcommand("replay", "Run rules over a file of JSON events (one per line) on the events' time");
  replay->add_option("--rules,-r", replay_args.rules, "Rules file or directory")->required();
  replay->add_option("--config,-c", replay_args.config, "Configuration file (time zone, location)");
  replay->add_option("--until,-u", until, "Advance time to this instant at the end (ms or RFC 3339)");
  replay->add_option("events", replay_args.events, "Events file (JSON lines); '-' or none: standard input");

  std::vector<std::string> test_paths;
  bool verbose = false;
  auto* test = app.add_subcommand("test", "Run rule tests (YAML files or directories of them)");
  test->add_option("paths", test_paths, "Test files or directories")->required();
  test->add_flag("--verbose,-v", verbose, "Also list the tests that pass");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*run) {
    // Heap on huge pages when VIGIE_MALLOC_TUNING=on (daemon/util/malloc_tuning.h): may
    // re-execute this same command once.
    vigie::daemon::MaybeReexecWithMallocTuning(argv);
    return vigie::daemon::RunDaemon(run_config);
  }
  if (*check) return vigie::daemon::RunCheck(check_paths);
  if (*replay) {
    if (!until.empty()) replay_args.until = until;
    return vigie::daemon::RunReplay(replay_args);
  }
  if (*test) return vigie::daemon::RunTests(test_paths, verbose);
  return 2;
}
