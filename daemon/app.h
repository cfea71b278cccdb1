#pragma once
// The composition root: builds every service from the configuration, starts them in order
// (state -> rules -> pipeline -> sinks -> sources -> HTTP ready) and stops them in reverse.
#include <string>

namespace vigie::daemon {

// `vigie run [--config FILE]`: returns the exit code (0 after a clean SIGTERM/SIGINT).
int RunDaemon(const std::string& config_path);

}  // namespace vigie::daemon
