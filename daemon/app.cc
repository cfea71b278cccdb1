#include "daemon/app.h"

#include <cstdio>

namespace vigie::daemon {

int RunDaemon(const std::string&) {
  std::fprintf(stderr, "vigie run: not built yet\n");
  return 1;
}

}  // namespace vigie::daemon
