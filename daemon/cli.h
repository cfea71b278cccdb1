#pragma once
// The offline subcommands of `vigie` (INTERFACES.md "Command line"): check, replay, test.
// Each returns the process exit code. `run` lives in app.h.
#include <optional>
#include <string>
#include <vector>

namespace vigie::daemon {

// vigie check PATH... : "ok: N rules in M files" (exit 0) or one FILE:LINE:COLUMN line per
// problem (exit 1), on standard output.
int RunCheck(const std::vector<std::string>& paths);

struct ReplayArgs {
  std::string rules;                 // --rules PATH (file or directory)
  std::string config;                // --config FILE (time zone and location); empty = defaults
  std::optional<std::string> until;  // --until TIME (ms or RFC 3339)
  std::string events = "-";          // EVENTS file; "-" = standard input
};
// vigie replay: outputs as JSON lines on stdout; bad lines as EVENTS:LINE: message on stderr.
int RunReplay(const ReplayArgs& args);

// vigie test FILE|DIR... : runs rule tests (docs/rules.md, "Testing rules"); prints a diff for
// every failing test and a closing "N passed, M failed" line; exit 1 if any failed.
int RunTests(const std::vector<std::string>& paths, bool verbose);

// Parses "1795729200000" (ms) or an RFC 3339 time.
bool ParseTimeArg(const std::string& text, int64_t* ms);

}  // namespace vigie::daemon
