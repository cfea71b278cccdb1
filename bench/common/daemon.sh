# Sourced by the bench shell scripts: starts build/daemon/vigie (BUILD_DIR to change) for one
# rule set on loopback ports 17001-17003 (source, commands, alerts) and 19464 (HTTP), with a
# temporary state dir, SHARDS shards (2) and checkpoint_interval CHECKPOINT (1s; 1h: none during
# a run), waits until it is ready, and stops it and removes the temp dir on exit. EXTRA_CONFIG
# (YAML lines, e.g. "state_write_mib_per_s: 0") is appended to the config, to compare a setting.
#   start_daemon RULES     sets $tmp (temp dir) and $pid (the daemon)
# Exits 1 with the daemon's log if it exits or is not ready within 10 s.
BUILD_DIR=${BUILD_DIR:-build}
pid=
tmp=

stop_daemon() {
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [[ -n "$tmp" ]] && rm -rf "$tmp"
  return 0
}

start_daemon() {
  local rules=$1
  tmp=$(mktemp -d)
  trap stop_daemon EXIT
  cat > "$tmp/vigie.yaml" <<CFG
rules: $rules
state_dir: $tmp/state
shards: ${SHARDS:-2}
checkpoint_interval: ${CHECKPOINT:-1s}
sources:
  - {type: zmq, socket: pull, bind: "tcp://127.0.0.1:17001"}
sinks:
  commands: {type: zmq, socket: pub, bind: "tcp://127.0.0.1:17002", format: json}
  alerts: {type: zmq, socket: pub, bind: "tcp://127.0.0.1:17003", format: json}
http: {listen: "127.0.0.1:19464"}
${EXTRA_CONFIG:-}
CFG
  "$BUILD_DIR/daemon/vigie" run --config "$tmp/vigie.yaml" 2> "$tmp/daemon.log" &
  pid=$!
  for _ in $(seq 100); do
    curl -sf 127.0.0.1:19464/readyz >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break  # exited: no use waiting
    sleep 0.1
  done
  echo "the daemon is not ready (exited, or not ready in 10 s):" >&2
  cat "$tmp/daemon.log" >&2
  exit 1
}
