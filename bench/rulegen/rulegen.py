#!/usr/bin/env python3
"""rulegen: rule sets of N rules for the city workload of vigie-load (bench/city).

The mix follows the issue's benchmark: 60 % stateless rules with `where` filters, 30 % windowed
rules (sliding, tumbling and count windows in equal parts) and 10 % absence rules, over every
event kind of the city, grouped by device, zone, junction or district. Thresholds vary from rule
to rule so that some rules fire often, some rarely. The output is deterministic.

Shape. The first 100 rules of the mix (60 stateless, 30 windowed, 10 absence) are city-wide:
each applies to every event of its kind, as before. Every rule beyond them targets one place or
asset, the way large real rule sets are written ("extend green at junction darcy"): its `where`
starts with a test of the event's place, e.g.

    where: 'junction == "j-411" and lane == "car"'     # traffic: a junction
    where: 'zone == "gare-7" and status == "ok"'       # lamps, light sensors, cameras: a zone
    where: 'device == "wp-2710" and bar > 0'           # water, bins: the asset itself
    where: 'device == "bus-87" and fleet in [...]'     # vehicles: the bus
    where: 'district == "mirande" and ...'             # citizens' reports: a district

(absence rules get the place test alone as their `where`). Places are spread evenly over the
city's places of that kind (a stride through them), with the names City::Build gives for
--devices devices (default 100000, vigie-load's default; keep the two equal). So as N grows,
the rules an event can match grow only with N / (places of its kind): with the rule index
(rules/index.h) the cost per event stays nearly flat. `--stats` prints, for the event mix of
the city, the rules per event that match by kind alone (what a kind-only lookup evaluates) and
by kind and place (what the index returns, before the base rules' own lane/status tests):

         N   by kind  by kind and place
        10       1.7                1.7
       100      10.9               10.9
       200      22.1               11.0
      1000     109.5               11.1
     10000    1092.2               12.5

  bench/rulegen/rulegen.py 200 > rules-200.yaml
  bench/rulegen/rulegen.py --all DIR        # DIR/rules-10.yaml ... DIR/rules-10000.yaml
  bench/rulegen/rulegen.py --stats          # the table above (for 10, 100, 200, 1000, 10000)
  bench/rulegen/rulegen.py --stats 5000     # for one N
"""
import argparse
import math
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

# The city-wide rules: the first BASE rules of the mix. Every rule past them targets a place.
BASE = 100

# Which place a targeted rule of each kind tests.
PLACE_FIELD = {
    "traffic": "junction", "lamp.status": "zone", "lux": "zone", "camera.status": "zone",
    "camera.heartbeat": "zone", "water.pressure": "device", "water.flow": "device",
    "bin.level": "device", "vehicle.position": "device", "report": "district",
}

# Share of each kind in the event stream, in percent (bench/city/city.cc, kEventShare).
EVENT_SHARE = {
    "traffic": 28, "pedestrian": 8, "lamp.status": 14, "lux": 4, "camera.heartbeat": 16,
    "camera.status": 2, "water.pressure": 7, "water.flow": 4, "bin.level": 8, "report": 1,
    "vehicle.position": 8,
}

DISTRICTS = ["centre", "gare", "montchapet", "toison-d-or", "gresilles", "fontaine-d-ouche",
             "universite", "port-du-canal", "bourroches", "mirande", "maladiere", "clemenceau",
             "chevre-morte", "valendons", "mansart", "drapeau", "pouilly", "victor-hugo",
             "faubourg-raines", "montmuzard"]
NAMED_JUNCTIONS = ["darcy", "republique", "wilson", "trente-octobre", "zenith", "toison-d-or",
                   "clemenceau", "grangier", "saint-bernard", "monge", "mirande", "premier-mai",
                   "auxonne", "sully", "jean-jaures", "gabriel-peri", "rocade-est", "rocade-nord"]


class City:
    """The places of bench/city for a number of devices (mirrors City::Impl::Build), each with
    the probability that an event of a kind comes from it."""

    def __init__(self, devices):
        n = max(devices, 100)
        nd = len(DISTRICTS)
        nz = min(max(n // 60, 8), 400)
        nj = min(max(n // 80, len(NAMED_JUNCTIONS)), 2000)

        def count(share, lo):
            return max(lo, int(n * share))

        self.zones = [f"{DISTRICTS[z % nd]}-{z // nd + 1}" for z in range(nz)]
        self.junctions = [NAMED_JUNCTIONS[j] if j < len(NAMED_JUNCTIONS) else f"j-{j}"
                          for j in range(nj)]
        # Traffic picks a junction with a skew: P(index < x * nj) = x ** (1 / 2.5).
        junction_p = [((j + 1) / nj) ** 0.4 - (j / nj) ** 0.4 for j in range(nj)]

        def by_modulo(devs, places):  # device i is at place i % places, picked uniformly
            p = [0.0] * places
            for i in range(devs):
                p[i % places] += 1.0 / devs
            return p

        def devices_of(prefix, k):
            return [f"{prefix}{i}" for i in range(1, k + 1)], [1.0 / k] * k

        nv = count(0.02, 10)
        buses = [f"bus-{i}" for i in range(1, sum(1 for v in range(nv) if v % 5 < 3) + 1)]
        zone_kinds = {"lamp.status": count(0.36, 20), "lux": count(0.03, nz),
                      "camera.status": count(0.10, 10), "camera.heartbeat": count(0.10, 10)}
        # kind -> (place names, probability of each for an event of that kind)
        self.places = {"traffic": (self.junctions, junction_p),
                       "report": (DISTRICTS, [1.0 / nd] * nd),
                       "water.pressure": devices_of("wp-", count(0.04, nd)),
                       "water.flow": devices_of("wf-", count(0.02, nd)),
                       "bin.level": devices_of("bin-", count(0.15, 10)),
                       # Only buses are targeted; a vehicle is picked among all nv vehicles.
                       "vehicle.position": (buses, [1.0 / nv] * len(buses))}
        for kind, devs in zone_kinds.items():
            self.places[kind] = (self.zones, by_modulo(devs, nz))


class Targets:
    """Deals out places to the targeted rules: for each (kind, family) a stride through the
    kind's places, so that consecutive rules land far apart and every place gets its turn."""

    def __init__(self, city):
        self.city = city
        self.next = {}
        self.chosen = []  # (kind, place index) of every targeted rule

    def take(self, kind, family):
        names, _ = self.city.places[kind]
        n = len(names)
        stride = 7919
        while math.gcd(stride, n) != 1:
            stride += 2
        k = self.next.get((kind, family), 0)
        self.next[(kind, family)] = k + 1
        idx = (k * stride + family * 37) % n
        self.chosen.append((kind, idx))
        return PLACE_FIELD[kind], names[idx]


def threshold(lo, hi, i, n):
    """A threshold that moves through the field's range from rule to rule."""
    x = lo + (hi - lo) * ((i * 37) % n + 0.5) / n
    return round(x, 1) if hi - lo < 10 else int(x)


def mix(n):
    stateless = round(n * 0.6)
    windowed = round(n * 0.3)
    absence = n - stateless - windowed
    return stateless, windowed, absence


BASE_STATELESS, BASE_WINDOWED, BASE_ABSENCE = mix(BASE)


def placed(where, kind, family, i, base, targets):
    """`where` for rule i of a category: as is for the city-wide ones, else a place test first."""
    if i < base:
        return where
    field, value = targets.take(kind, family)
    test = f'{field} == "{value}"'
    return f"{test} and {where}" if where else test


def stateless_rule(i, n, targets):
    family = i % len(KINDS)
    kind, groups, field, (lo, hi), where = KINDS[family]
    where = placed(where, kind, family, i, BASE_STATELESS, targets)
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


def windowed_rule(i, n, targets):
    family = i % len(KINDS)
    kind, groups, field, (lo, hi), where = KINDS[family]
    where = placed(where, kind, 100 + family, i, BASE_WINDOWED, targets)
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


def absence_rule(i, n, targets):
    family = i % len(HEARTBEATS)
    kind, group = HEARTBEATS[family]
    where = placed("", kind, 200 + family, i, BASE_ABSENCE, targets)
    d = ["1m", "2m", "5m", "10m"][(i // len(HEARTBEATS)) % 4]
    lines = [f"  - name: bench-a{i}-{kind.replace('.', '-')}-{group}",
             f"    on: {kind}"]
    if where:
        lines.append(f"    where: '{where}'")
    lines += [
        f"    group_by: {group}",
        f"    absent_for: {d}",
        "    then:",
        f'      - alert: {{severity: warning, summary: "{group} {{{group}}} silent for {d}", labels: {{{group}: "{{{group}}}"}}}}',
    ]
    return "\n".join(lines)


def generate(n, city):
    """The rule file for n rules, and the rules' (kind, place index or None) for --stats."""
    targets = Targets(city)
    s, w, a = mix(n)
    out = [f"# {n} rules for the city workload (bench/rulegen/rulegen.py {n}): "
           f"{s} stateless, {w} windowed, {a} absence; "
           f"{max(0, s - BASE_STATELESS) + max(0, w - BASE_WINDOWED) + max(0, a - BASE_ABSENCE)}"
           " of them target one place", "rules:"]
    shapes = []
    for i in range(s):
        out.append(stateless_rule(i, n, targets))
        shapes.append(KINDS[i % len(KINDS)][0])
    for i in range(w):
        out.append(windowed_rule(i, n, targets))
        shapes.append(KINDS[i % len(KINDS)][0])
    for i in range(a):
        out.append(absence_rule(i, n, targets))
        shapes.append(HEARTBEATS[i % len(HEARTBEATS)][0])
    return "\n".join(out) + "\n", shapes, targets.chosen


def stats(n, city):
    """Expected rules per event of the city's mix: by kind alone, and by kind and place."""
    _, kinds, chosen = generate(n, city)
    by_kind = {}
    for k in kinds:
        by_kind[k] = by_kind.get(k, 0) + 1
    placed_rules = {}
    for k, _ in chosen:
        placed_rules[k] = placed_rules.get(k, 0) + 1
    expect_place = {}
    for k, idx in chosen:
        expect_place[k] = expect_place.get(k, 0.0) + city.places[k][1][idx]
    total = sum(EVENT_SHARE.values())
    kind_only = sum(EVENT_SHARE[k] * c for k, c in by_kind.items()) / total
    with_place = sum(EVENT_SHARE[k] * (c - placed_rules.get(k, 0) + expect_place.get(k, 0.0))
                     for k, c in by_kind.items()) / total
    return kind_only, with_place


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=None, help="number of rules (default 200)")
    p.add_argument("--all", metavar="DIR", help="write rules-{10,100,200,1000,10000}.yaml into DIR")
    p.add_argument("--devices", type=int, default=100000,
                   help="devices of the city the rules target (vigie-load --devices; default 100000)")
    p.add_argument("--stats", action="store_true",
                   help="print the expected rules per event instead of the rules")
    args = p.parse_args()
    city = City(args.devices)
    if args.stats:
        print(f"# expected rules per event (city of {args.devices} devices, its event mix)")
        print(f"{'N':>6} {'by kind':>9} {'by kind and place':>18}")
        for n in ([args.n] if args.n else [10, 100, 200, 1000, 10000]):
            k, pl = stats(n, city)
            print(f"{n:>6} {k:>9.1f} {pl:>18.1f}")
        return 0
    if args.all:
        os.makedirs(args.all, exist_ok=True)
        for n in (10, 100, 200, 1000, 10000):
            with open(os.path.join(args.all, f"rules-{n}.yaml"), "w") as f:
                f.write(generate(n, city)[0])
        return 0
    n = 200 if args.n is None else args.n
    if n < 1:
        print("rulegen: n must be at least 1", file=sys.stderr)
        return 2
    sys.stdout.write(generate(n, city)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
