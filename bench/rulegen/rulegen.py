#!/usr/bin/env python3
"""rulegen: rule sets of N rules for the city workload of vigie-load (bench/city).

The mix follows the 200-rule benchmark set: 60 % stateless rules with `where` filters, 30 %
windowed rules (sliding, tumbling and count windows in equal parts) and 10 % absence rules, over
every event kind of the city, grouped by device, zone, junction or district. Thresholds vary
from rule to rule so that some rules fire often, some rarely. The output is deterministic.

  bench/rulegen/rulegen.py 200 > rules-200.yaml
  bench/rulegen/rulegen.py --all DIR        # DIR/rules-10.yaml ... DIR/rules-10000.yaml
"""
import argparse
import os
import sys

# (kind, group fields available, numeric field, typical range (lo, hi), a where filter)
KINDS = [
    ("traffic", ["device", "zone", "junction"], "speed", (20, 60), 'lane == "car"'),
    ("traffic", ["device", "zone", "junction"], "vehicles", (0, 30), 'lane != "bus"'),
    ("lamp.status", ["device", "zone"], "power_w", (0, 120), 'status == "ok"'),
    ("lux", ["device", "zone"], "lux", (1, 1000), "lux >= 0"),
    ("camera.status", ["device", "zone"], "code", (0, 21), 'status in ["ok", "fault"]'),
    ("water.pressure", ["device", "district"], "bar", (0.5, 4.5), "bar > 0"),
    ("water.flow", ["device", "district"], "m3h", (10, 200), "m3h >= 0"),
    ("bin.level", ["device", "district"], "fill", (0, 100), "fill >= 0"),
    ("report", ["device", "district"], "severity", (1, 3), 'category != "waste"'),
    ("vehicle.position", ["device", "district"], "speed", (0, 50), 'fleet in ["bus", "police"]'),
]
HEARTBEATS = [("camera.heartbeat", "device"), ("camera.heartbeat", "zone"), ("traffic", "device"),
              ("traffic", "junction"), ("vehicle.position", "device"), ("lamp.status", "zone"),
              ("water.pressure", "district"), ("bin.level", "device")]
WINDOWS = ["sliding", "tumbling", "count"]


def threshold(lo, hi, i, n):
    """A threshold that moves through the field's range from rule to rule."""
    x = lo + (hi - lo) * ((i * 37) % n + 0.5) / n
    return round(x, 1) if hi - lo < 10 else int(x)


def mix(n):
    stateless = round(n * 0.6)
    windowed = round(n * 0.3)
    absence = n - stateless - windowed
    return stateless, windowed, absence


def stateless_rule(i, n):
    kind, groups, field, (lo, hi), where = KINDS[i % len(KINDS)]
    t = threshold(lo, hi, i, max(n, 1))
    op = ">" if i % 2 == 0 else "<"
    lines = [
        f"  - name: bench-s{i}-{kind.replace('.', '-')}",
        f"    on: {kind}",
        f"    where: '{where}'",
        f"    when: {field} {op} {t}",
    ]
    if i % 3 == 0:
        lines += ["    then:",
                  f'      - command: {{target: "bench/{{device}}", action: set, rule_no: {i}, value: "{{{field}}}"}}']
    else:
        lines += ["    then:",
                  f'      - alert: {{severity: info, summary: "{{device}} {field} {op} {t}", labels: {{kind: "{kind}"}}}}']
    return "\n".join(lines)


def windowed_rule(i, n):
    kind, groups, field, (lo, hi), where = KINDS[i % len(KINDS)]
    w = WINDOWS[i % 3]
    group = groups[(i // 3) % len(groups)]
    window = {"sliding": "{sliding: %s}" % ["1m", "5m", "10m"][(i // 3) % 3],
              "tumbling": "{tumbling: %s}" % ["1m", "5m", "15m"][(i // 3) % 3],
              "count": "{count: %d}" % [5, 10, 20][(i // 3) % 3]}[w]
    agg = ["avg", "max", "min", "sum", "count_distinct"][i % 5]
    arg = "device" if agg == "count_distinct" else field
    t = threshold(lo, hi, i, max(n, 1))
    if agg == "sum":
        t = t * 20
    if agg == "count_distinct":
        t = 3 + i % 10
    lines = [
        f"  - name: bench-w{i}-{w}-{kind.replace('.', '-')}",
        f"    on: {kind}",
        f"    where: '{where}'",
        f"    group_by: {group}",
        f"    window: {window}",
        "    let:",
        f"      v: {agg}({arg})",
        "      n: count()",
        f"    when: v > {t} and n >= 2",
        "    then:",
        f'      - command: {{target: "bench/{group}/{{{group}}}", action: on, level: {i % 100}, v: "{{v}}"}}',
        "    otherwise:",
        f'      - command: {{target: "bench/{group}/{{{group}}}", action: off}}',
    ]
    return "\n".join(lines)


def absence_rule(i, n):
    kind, group = HEARTBEATS[i % len(HEARTBEATS)]
    d = ["1m", "2m", "5m", "10m"][(i // len(HEARTBEATS)) % 4]
    return "\n".join([
        f"  - name: bench-a{i}-{kind.replace('.', '-')}-{group}",
        f"    on: {kind}",
        f"    group_by: {group}",
        f"    absent_for: {d}",
        "    then:",
        f'      - alert: {{severity: warning, summary: "{group} {{{group}}} silent for {d}", labels: {{{group}: "{{{group}}}"}}}}',
    ])


def generate(n):
    s, w, a = mix(n)
    out = [f"# {n} rules for the city workload (bench/rulegen/rulegen.py {n}): "
           f"{s} stateless, {w} windowed, {a} absence", "rules:"]
    out += [stateless_rule(i, n) for i in range(s)]
    out += [windowed_rule(i, n) for i in range(w)]
    out += [absence_rule(i, n) for i in range(a)]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=200, help="number of rules (default 200)")
    p.add_argument("--all", metavar="DIR", help="write rules-{10,100,200,1000,10000}.yaml into DIR")
    args = p.parse_args()
    if args.all:
        os.makedirs(args.all, exist_ok=True)
        for n in (10, 100, 200, 1000, 10000):
            with open(os.path.join(args.all, f"rules-{n}.yaml"), "w") as f:
                f.write(generate(n))
        return 0
    if args.n < 1:
        print("rulegen: n must be at least 1", file=sys.stderr)
        return 2
    sys.stdout.write(generate(args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
