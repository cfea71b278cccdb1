#!/usr/bin/env python3
"""engine-scaling: the rules library's cost per event as rules and groups grow (issue 5).

Runs build/bench/engine/vigie-engine-bench (one thread, no daemon, no transport) several times
per point, alternating the points so that a slow minute of the machine spreads over all of them,
and prints a Markdown report: median, min and max ns per event, the ratios the targets name
(10 000 rules against 100; about 1 M groups against 10 000) and the engine's bytes per group.

  bench/engine-scaling.py                 # both series, 3 runs each (about 9 minutes)
  bench/engine-scaling.py --runs 5 --only rules
  bench/engine-scaling.py --out bench/results/engine-scaling.md

Rules: rule sets from bench/rulegen/rulegen.py --devices 100000 N (N = 100, 1000, 10000 by
default), 200 000 events of the city of 100 000 devices. Groups: the city rules of config/rules
(one file, as vigie-engine-bench takes one), D devices and 2D events, cycled through a warm-up
of 8 M events at every point (400 s of virtual time at 20 000 events/s, at least 4 events per
device), so that every point is measured with its groups made and its windows filled. The
device counts (20 000, 200 000, 2 M) are those whose groups come to about 10 000, 100 000 and
1 M: the city rules hold about one group for two devices (a stateless rule holds a group only
for keys whose `when` has held).
On a shared 2-vCPU machine single runs vary by up to ±30 %: compare medians of several runs.
The runs have glibc's heap on transparent huge pages, as `vigie run` has it with
VIGIE_MALLOC_TUNING=on (daemon/util/malloc_tuning.h); `--malloc default` measures 4 KiB pages
(about a quarter slower).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# What `vigie run` gives itself with VIGIE_MALLOC_TUNING=on (daemon/util/malloc_tuning.h):
# glibc's heap on transparent huge pages, one arena. The engine bench is one thread, so hugetlb
# alone would do; the same string keeps the two comparable. --malloc default measures glibc's
# defaults instead.
DAEMON_TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"
ENV = dict(os.environ)


def run_bench(binary, rules, devices, events, warmup, seconds, warmup_events=None):
    cmd = [binary, rules, "--only", "process", "--devices", str(devices), "--events", str(events),
           "--warmup", str(warmup), "--seconds", str(seconds), "--no-check"]
    if warmup_events:
        cmd += ["--warmup-events", str(warmup_events)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-400:]}")
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line), " ".join(cmd)
    raise RuntimeError(f"{' '.join(cmd)}: no JSON result line")


def stats(values):
    return statistics.median(values), min(values), max(values)


def table(title, unit, points, results, base_key, ratio_label):
    lines = [f"### {title}", "", f"| {unit} | runs | median ns/event | min | max | groups | "
             f"bytes/group | vs {ratio_label} |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    base = statistics.median(r["process_ns"] for r in results[base_key]) if results.get(base_key) else None
    for p in points:
        rs = results.get(p)
        if not rs:
            continue
        med, lo, hi = stats([r["process_ns"] for r in rs])
        groups = int(statistics.median(r["groups"] for r in rs))
        bpg = int(statistics.median(r["bytes_per_group"] for r in rs))
        ratio = f"{med / base:.2f}" if base else "–"
        lines.append(f"| {p:,} | {len(rs)} | {med:,.0f} | {lo:,.0f} | {hi:,.0f} | {groups:,} | {bpg} | {ratio} |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per point (default 3)")
    ap.add_argument("--only", choices=["rules", "groups"], help="one series only")
    ap.add_argument("--rules", default="100,1000,10000", help="rule counts (default 100,1000,10000)")
    ap.add_argument("--devices", default="20000,200000,2000000",
                    help="device counts for the groups series (default 20000,200000,2000000: "
                         "about 10 000, 100 000 and 1 M groups)")
    ap.add_argument("--warmup-events", type=int, default=8_000_000,
                    help="groups series: events processed before each measured stage (default "
                         "8000000)")
    ap.add_argument("--seconds", type=float, default=3, help="measured seconds per run (default 3)")
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--out", help="also write the report to this file")
    ap.add_argument("--malloc", choices=["daemon", "default"], default="daemon",
                    help="daemon (default): the heap on huge pages as `vigie run` has it with "
                         "VIGIE_MALLOC_TUNING=on (GLIBC_TUNABLES=" + DAEMON_TUNABLES + "); "
                         "default: glibc's defaults")
    args = ap.parse_args()
    prefix = ""
    if args.malloc == "daemon":
        ENV["GLIBC_TUNABLES"] = DAEMON_TUNABLES
        prefix = f"GLIBC_TUNABLES={DAEMON_TUNABLES} "

    binary = os.path.join(args.build_dir, "bench", "engine", "vigie-engine-bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"engine-scaling: {binary} not found: build first (ninja -C build vigie-engine-bench)")
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="vigie-engine-scaling-")
    commands = []
    report = []

    if args.only in (None, "rules"):
        counts = [int(x) for x in args.rules.split(",")]
        files = {}
        for n in counts:
            path = os.path.join(tmp, f"rules-{n}.yaml")
            with open(path, "w") as f:
                subprocess.run([sys.executable, os.path.join(ROOT, "bench", "rulegen", "rulegen.py"),
                                "--devices", "100000", str(n)], stdout=f, check=True)
            files[n] = path
        results = {n: [] for n in counts}
        for r in range(args.runs):
            for n in counts:
                res, cmd = run_bench(binary, files[n], 100000, 200000, 20, args.seconds)
                results[n].append(res)
                print(f"rules {n:>6} run {r + 1}: {res['process_ns']:,.0f} ns/event", file=sys.stderr)
                if r == 0:
                    commands.append(f"bench/rulegen/rulegen.py --devices 100000 {n} > rules-{n}.yaml")
                    commands.append(prefix + cmd.replace(binary, "build/bench/engine/vigie-engine-bench")
                                    .replace(files[n], f"rules-{n}.yaml"))
        base = 100 if 100 in counts else counts[0]
        report += table("Cost per event as rules grow (100 000 devices)", "rules", counts, results,
                        base, f"{base} rules")
        report.append("")

    if args.only in (None, "groups"):
        devices = [int(x) for x in args.devices.split(",")]
        city = os.path.join(tmp, "city-all.yaml")
        rules_dir = os.path.join(ROOT, "config", "rules")
        with open(city, "w") as out:
            out.write("rules:\n")
            for name in sorted(os.listdir(rules_dir)):
                if name.endswith(".yaml"):
                    with open(os.path.join(rules_dir, name)) as f:  # all but their "rules:" line
                        out.writelines(l for l in f if l.rstrip() != "rules:")
        results = {d: [] for d in devices}
        for r in range(args.runs):
            for d in devices:
                res, cmd = run_bench(binary, city, d, 2 * d, 120, args.seconds, args.warmup_events)
                results[d].append(res)
                print(f"devices {d:>8} run {r + 1}: {res['process_ns']:,.0f} ns/event, "
                      f"{res['groups']:,} groups", file=sys.stderr)
                if r == 0:
                    commands.append(prefix + cmd.replace(binary, "build/bench/engine/vigie-engine-bench")
                                    .replace(city, "city-all.yaml"))
        base = devices[0]
        report += table("Cost per event as groups grow (the city rules of config/rules)", "devices",
                        devices, results, base, f"{base:,} devices")
        report.append("")

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    head = [f"## Engine scaling (`bench/engine-scaling.py`, commit `{commit}`, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, {time.time() - t0:.0f} s)", "",
            "One thread, the rules library alone (`vigie-engine-bench --only process`), "
            f"{args.runs} alternating runs per point of {args.seconds:g} s after a warm-up. "
            "`city-all.yaml` is the rule files of config/rules in one file. malloc: "
            + ("the heap on huge pages, as `vigie run` has it with VIGIE_MALLOC_TUNING=on."
               if args.malloc == "daemon"
               else "glibc's defaults (4 KiB pages)."), ""]
    text = "\n".join(head + report + ["```"] + commands + ["```", ""])
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
