#!/usr/bin/env bash
# run-bench.sh — what `make bench` calls: the ceiling and the daemon under the city workload.
#   bench/run-bench.sh            full run (< 10 min): writes bench/RESULTS.md and bench/results/
#   bench/run-bench.sh --quick    CI smoke (< 1 min): writes bench/results/quick/
#   BUILD_DIR=build-foo bench/run-bench.sh --quick
# All options: bench/run-bench.sh --help. The orchestration is bench/bench.py (Python 3 standard
# library only); binaries come from $BUILD_DIR (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py --build-dir "${BUILD_DIR:-build}" "$@"
