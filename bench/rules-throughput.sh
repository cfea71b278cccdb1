#!/usr/bin/env bash
# Max-rate throughput of the daemon for one rule set, FlatBuffers batches from vigie-load.
#   bench/rules-throughput.sh RULES [vigie-load options...]      e.g. config/rules --duration 8
# Starts build/daemon/vigie on loopback ports 17001-17003 / 19464 with a temporary state dir,
# 2 shards (SHARDS=n) and checkpoint_interval 1s (CHECKPOINT=1h measures without checkpoints),
# sends for the given duration, waits (bounded) for the backlog to drain, prints events/s
# processed (counted once per event, from /metrics), RSS and groups, then stops.
set -euo pipefail
RULES=${1:?usage: bench/rules-throughput.sh RULES [vigie-load options]}
shift
source "$(dirname "$0")/common/daemon.sh"
start_daemon "$RULES"
metrics() {
  curl -s 127.0.0.1:19464/metrics | awk '/^vigie_events_processed_total /{p=$2}
    /^process_resident_memory_bytes /{m=$2} /^vigie_state_groups /{g=$2} END{print p, m, g}'
}
read -r p0 _ _ < <(metrics)
t0=$(date +%s.%N)
"$BUILD_DIR/bench/vigie-load" --endpoint tcp://127.0.0.1:17001 "$@" > "$tmp/load.log" 2>&1
prev=-1
for _ in $(seq 120); do  # drain: until processed stops moving (at most 60 s)
  read -r p m g < <(metrics)
  [[ "$p" == "$prev" ]] && break
  prev=$p
  sleep 0.5
done
t1=$(date +%s.%N)
python3 -c "print('rules=%s processed=%d events/s=%.0f seconds=%.1f rss_mb=%.0f groups=%s' % ('$RULES', $p - $p0, ($p - $p0) / ($t1 - $t0), $t1 - $t0, $m / 1e6, '$g'))"
