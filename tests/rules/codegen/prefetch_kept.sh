#!/usr/bin/env bash
# prefetch_kept.sh BINARY: each vigie_codegen_prefetch_* function of BINARY (prefetch_kept.cc)
# holds at least one prefetch instruction. Exits 1 naming the functions that lost theirs.
set -euo pipefail
bin=${1:?usage: prefetch_kept.sh BINARY}
"$bin"  # the functions run (and the binary links) before their code is read
objdump -d --no-show-raw-insn "$bin" | awk '
  /^[0-9a-f]+ <vigie_codegen_prefetch_[a-z_]+>:$/ { fn = $2; seen[fn] = 0; next }
  /^[0-9a-f]+ <.*>:$/ { fn = "" }
  fn != "" && /prefetch/ { seen[fn]++ }
  END {
    n = 0; bad = 0
    for (f in seen) { n++; if (seen[f] == 0) { print "no prefetch instruction left in " f; bad = 1 } }
    if (n != 3) { print "expected 3 vigie_codegen_prefetch_* functions, found " n; bad = 1 }
    if (!bad) print "prefetches kept in " n " functions"
    exit bad
  }'
