#!/usr/bin/env bash
# run-city.sh — what `make run` calls after building into ./build: the daemon with its default
# configuration (config/vigie.yaml, from the repository root), the city simulator feeding it and
# the live view. Ctrl-C (or SIGTERM) stops all three cleanly and exits 0.
#
#   bench/run-city.sh                 # until Ctrl-C
#   DURATION=30 bench/run-city.sh     # stop by itself after 30 s (smoke tests)
#   BUILD_DIR=build-foo bench/run-city.sh
#   SIM_ARGS="--rate 5000 --format flatbuffers" bench/run-city.sh
#   CONFIG=my.yaml bench/run-city.sh  # vigie run --config my.yaml (HTTP=host:port if it moves /metrics)
#
# Everything binds/connects to 127.0.0.1 only (ports of config/vigie.yaml: 7001 events in, 7002
# commands, 7003 alerts, 9464 HTTP).
set -u
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DURATION=${DURATION:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}
SIM_ARGS=${SIM_ARGS:-}
WATCH_ARGS=${WATCH_ARGS:-}
HTTP=${HTTP:-127.0.0.1:9464}
CONFIG=${CONFIG:-}

VIGIE=$BUILD_DIR/daemon/vigie
SIM=$BUILD_DIR/bench/vigie-sim
WATCH=$BUILD_DIR/bench/vigie-watch
for b in "$VIGIE" "$SIM" "$WATCH"; do
  if [[ ! -x $b ]]; then
    echo "run-city: $b not found (build first: make, or set BUILD_DIR)" >&2
    exit 2
  fi
done

pids=()
stopping=0
stop_all() {
  stopping=1
  # Reverse order of start: the view, the simulator, then the daemon (which drains and checkpoints).
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null
    for _ in $(seq 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "run-city: pid ${pids[i]} did not stop in 10 s, killing it" >&2
      kill -KILL "${pids[i]}" 2>/dev/null
    fi
    wait "${pids[i]}" 2>/dev/null
  done
  pids=()
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

mkdir -p "$BUILD_DIR/run"
LOG=$BUILD_DIR/run/vigie.log
echo "run-city: starting $VIGIE run ${CONFIG:+--config $CONFIG }(log: $LOG)"
"$VIGIE" run ${CONFIG:+--config "$CONFIG"} >"$LOG" 2>&1 &
pids+=($!)

# Wait for /readyz (rules loaded, state recovered), with a deadline.
ready=0
for _ in $(seq $((READY_TIMEOUT * 10))); do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "run-city: vigie exited during start-up; its log:" >&2
    tail -n 30 "$LOG" >&2
    pids=()
    exit 1
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$HTTP/readyz" 2>/dev/null)
  if [[ $code == 200 ]]; then ready=1; break; fi
  sleep 0.1
done
if [[ $ready != 1 ]]; then
  echo "run-city: vigie not ready after ${READY_TIMEOUT}s; its log:" >&2
  tail -n 30 "$LOG" >&2
  exit 1
fi
echo "run-city: vigie ready; metrics at http://$HTTP/metrics, rules at http://$HTTP/rules"

# shellcheck disable=SC2086
"$SIM" --endpoint tcp://127.0.0.1:7001 $SIM_ARGS 2>"$BUILD_DIR/run/vigie-sim.log" &
pids+=($!)
# shellcheck disable=SC2086
"$WATCH" --metrics "http://$HTTP/metrics" $WATCH_ARGS &
pids+=($!)

# Run until Ctrl-C, DURATION, or one of the three dies.
start=$SECONDS
while ((stopping == 0)); do
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
      echo "run-city: process $p exited; stopping the others" >&2
      stop_all
      exit 1
    fi
  done
  if ((DURATION > 0 && SECONDS - start >= DURATION)); then
    echo "run-city: ${DURATION}s elapsed, stopping"
    stop_all
    exit 0
  fi
  sleep 0.5 &
  wait $! 2>/dev/null
done
