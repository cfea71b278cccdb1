#!/usr/bin/env bash
# The daemon's CPU time per event at a fixed offered rate: what one event costs, all threads
# included (shards, source, dispatcher, checkpointer, RocksDB's flushes and compactions).
#   bench/cpu-per-event.sh RULES RATE [SECONDS]       e.g. /tmp/rules-200.yaml 40000 60
# Starts build/daemon/vigie (BUILD_DIR to change) on loopback ports 17001-17003 / 19464 with a
# temporary state dir, 2 shards (SHARDS=n) and checkpoint_interval 1s (CHECKPOINT=1h: none during
# the run, to isolate what checkpoints cost), sends FlatBuffers batches from vigie-load at RATE
# events/s, and after a 5 s warm-up reads process_cpu_seconds_total and
# vigie_events_processed_total from /metrics SECONDS apart (default 60). Prints µs of CPU per
# event, the processed rate (below RATE: the daemon could not carry it, and the figure is not
# comparable), the cores used and the daemon's peak RSS (VmHWM), then the same CPU split by
# thread name (vg-shard-0, vg-source, vg-dispatch, vg-checkpoint, rocksdb:high = flushes,
# rocksdb:low = compactions, ZMQbg/IO/0 ...),
# read from /proc/<pid>/task/*/stat at the same two instants: µs per event and share of the total.
# WARMUP (seconds, default 5) and LOAD_ARGS (more vigie-load options, e.g. "--devices 1000000")
# change the warm-up and the workload.
#
# Steadier than the maximum rate (bench/rules-throughput.sh), where the daemon and the load
# generator share two cores: two runs of one binary agree within a few per cent, once SECONDS
# spans several RocksDB compactions (they come every 10-20 s with 500 000 groups). Stops by itself.
set -euo pipefail
RULES=${1:?usage: bench/cpu-per-event.sh RULES RATE [SECONDS]}
RATE=${2:?usage: bench/cpu-per-event.sh RULES RATE [SECONDS]}
SECS=${3:-60}
WARMUP=${WARMUP:-5}
source "$(dirname "$0")/common/daemon.sh"
start_daemon "$RULES"
sample() {
  curl -s 127.0.0.1:19464/metrics | awk '/^vigie_events_processed_total /{p=$2}
    /^process_cpu_seconds_total /{c=$2} END{print p, c}'
}
"$BUILD_DIR/bench/vigie-load" --endpoint tcp://127.0.0.1:17001 --rate "$RATE" \
  --duration $((SECS + WARMUP + 2)) ${LOAD_ARGS:-} > "$tmp/load.log" 2>&1 &
lp=$!
# "<thread name>\t<utime+stime in clock ticks>" for every thread of the daemon.
threads() {
  local t
  for t in /proc/"$pid"/task/*; do
    printf '%s\t%s\n' "$(cat "$t/comm" 2>/dev/null)" \
      "$(sed 's/^.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
  done
}
sleep "$WARMUP"
threads > "$tmp/threads0"
read -r p0 c0 < <(sample)
sleep "$SECS"
threads > "$tmp/threads1"
read -r p1 c1 < <(sample)
hwm=$(awk '/^VmHWM:/{printf "%.0f", $2 / 1024}' /proc/"$pid"/status)
wait $lp
python3 - "$tmp/threads0" "$tmp/threads1" "$(getconf CLK_TCK)" <<PY
import collections, sys
p = $p1 - $p0; c = $c1 - $c0
print('rules=%s rate=%s checkpoint=%s cpu_us_per_event=%.2f events/s=%.0f cores=%.2f '
      'peak_rss_mib=%s' % ('$RULES', '$RATE', '${CHECKPOINT:-1s}', c * 1e6 / max(p, 1),
                           p / $SECS, c / $SECS, '$hwm'))
def ticks(path):
    d = collections.Counter()
    for line in open(path):
        name, _, t = line.rstrip('\n').rpartition('\t')
        if t: d[name] += int(t)
    return d
a, b, hz = ticks(sys.argv[1]), ticks(sys.argv[2]), int(sys.argv[3])
# Threads that exist at both instants (a thread that ended in between is not counted).
d = {k: (b[k] - a[k]) / hz for k in b if k in a and b[k] > a[k]}
total = sum(d.values()) or 1
for k in sorted(d, key=lambda k: -d[k]):
    print('  %-16s %6.2f us/event %5.1f %%' % (k, d[k] * 1e6 / max(p, 1), 100 * d[k] / total))
PY
