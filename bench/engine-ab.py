#!/usr/bin/env python3
"""engine-ab: two builds of the rules engine compared in pairs run at the same time.

On a shared 2-vCPU machine a single run of vigie-engine-bench varies by ±10 % from one minute to
the next, more than most changes are worth. Run one after the other, an old and a new binary
meet different minutes; run at the same time, one per core, they meet the same one. Each pair
runs both binaries at once (each pinned to its own core, the cores swapped every pair so that
neither binary keeps the better one), and the figure is the ratio new / old of their ns per
event, whose median over the pairs says what the change bought. Both run slower than alone (they
share the cache and memory): compare ratios, not the absolute figures.

  bench/engine-ab.py OLD_BUILD_DIR NEW_BUILD_DIR [--pairs 6] -- RULES [vigie-engine-bench args]
  bench/engine-ab.py /tmp/old/build build -- /tmp/rules-10000.yaml --devices 100000 --events 200000
  bench/engine-ab.py build build --old-args="--lookahead off" --new-args="--lookahead on" -- \
      city-all.yaml --devices 1000000 --events 2000000 --warmup 30 --seconds 3

The arguments after `--` go to vigie-engine-bench as they are, with `--only process --no-check`
added unless given; --old-args and --new-args add arguments to one side only (one build, two
settings). Standard library only; Linux (sched_setaffinity).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ENV = dict(os.environ)
# As bench/engine-scaling.py: the heap on huge pages, as `vigie run` has it.
ENV.setdefault("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1")


def start(build, args, core):
    binary = os.path.join(build, "bench", "engine", "vigie-engine-bench")
    return subprocess.Popen([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def result(proc, build):
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        sys.exit(f"{build}: vigie-engine-bench failed: {err.strip()[-400:]}")
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["process_ns"]
    sys.exit(f"{build}: no JSON result line")


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--old-args", default="", help="more vigie-engine-bench arguments for OLD only")
    ap.add_argument("--new-args", default="", help="more vigie-engine-bench arguments for NEW only")
    args = ap.parse_args(argv[:cut])
    bench_args = argv[cut + 1:]
    if "--only" not in bench_args:
        bench_args += ["--only", "process"]
    if "--no-check" not in bench_args:
        bench_args.append("--no-check")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("needs two cores")
    ratios = []
    for i in range(args.pairs):
        c_old, c_new = (cores[0], cores[1]) if i % 2 == 0 else (cores[1], cores[0])
        p_old = start(args.old, bench_args + args.old_args.split(), c_old)
        p_new = start(args.new, bench_args + args.new_args.split(), c_new)
        old, new = result(p_old, args.old), result(p_new, args.new)
        ratios.append(new / old)
        print(f"pair {i + 1}: old {old:,.0f} ns/event (core {c_old}), new {new:,.0f} (core {c_new}),"
              f" new/old {new / old:.3f}", flush=True)
    print(f"new/old over {len(ratios)} pairs: median {statistics.median(ratios):.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f}")
    print("command: vigie-engine-bench " + " ".join(bench_args) +
          (f" (old: {args.old_args}; new: {args.new_args})" if args.old_args or args.new_args else ""))


if __name__ == "__main__":
    main()
