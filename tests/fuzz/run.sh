#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds the libFuzzer targets with clang (ASan + UBSan) into
# build-fuzz/ and runs each for SECONDS (default 60) on a temporary copy of its seed corpus
# (tests/fuzz/corpus/<target>/, so the repository's corpus is not polluted). Fails on the first
# crash, leak, timeout or trap; the reproducer is left in tests/fuzz/crashes/.
# Environment: JOBS (ninja jobs, default 2), FUZZ_JOBS (parallel fuzz workers, default 1).
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
crashes=$root/tests/fuzz/crashes
san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

if ! command -v clang++ >/dev/null; then
  echo "run.sh: clang++ not found (make deps installs it)" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$san" \
  -DVIGIE_FUZZ=ON -DVIGIE_BUILD_BENCH=OFF >/dev/null

targets=(fuzz_json_decoder fuzz_fb_decoder fuzz_state_restore)
if [[ -f $root/rules/loader.cc ]]; then targets+=(fuzz_rule_loader); fi
ninja -C "$build" -j"${JOBS:-2}" "${targets[@]}"

mkdir -p "$crashes"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s"
  mkdir -p "$work/$t"
  cp -r "$root/tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
  par=()
  if [[ ${FUZZ_JOBS:-1} -gt 1 ]]; then par=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
  # Run from $work: with -jobs libFuzzer writes fuzz-N.log files into the current directory.
  if ! (cd "$work" && "$build/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 "${par[@]}" -print_final_stats=1 \
      -artifact_prefix="$crashes/$t-" "$work/$t" >"$work/$t.log" 2>&1); then
    tail -n 60 "$work/$t.log"
    echo "FAIL: $t (reproducer in $crashes/)" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/$t.log" | tr '\n' ' '
    echo
  fi
done
exit $status
