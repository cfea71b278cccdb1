#!/usr/bin/env python3
"""The vigie benchmark (what `make bench` runs through bench/run-bench.sh).

1. The ceiling: vigie-load -> vigie-ceiling (receive + verify/parse + read kind and device, nothing
   else), for FlatBuffers and JSON batches; with --full also vigie's own decoders (--mode codec).
2. The daemon: `vigie run --config <temp config>` (temp state dir, loopback ports of its own, a
   generated rule set from bench/rulegen) fed by vigie-load at the maximal rate. /metrics is read
   during the load (after a warm-up) and after it: events processed per second in steady state,
   events rejected, RSS, the ingest->processed latency histogram.
3. The latency at half the maximum rate: the 200-rule set again, vigie-load at half the median
   rate of step 2 (--rate), ingest->output and ingest->processed p50/p99/p99.9 from the daemon's
   histograms over the measured interval.
4. Writes RESULTS.md (machine, commands, median/min/max over runs, ratio to the ceiling, the
   latency table, two SVG plots made by bench/plots.py: throughput against the rule count, the
   latency CDF) and the raw results (runs.csv, runs.jsonl, the plots) next to it.

Everything binds 127.0.0.1, every step has a deadline, leftovers are killed, and the exit code is
non-zero if anything failed. Standard library only.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = []  # every child still running, killed on the way out


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    PROCS.append(p)
    return p


def finish(p, timeout, sig=None):
    """Waits for p (sending sig first if given); kills it at the deadline. Returns its exit code."""
    if sig is not None and p.poll() is None:
        p.send_signal(sig)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"pid {p.pid} ({os.path.basename(p.args[0])}) missed its {timeout}s deadline: killed")
        p.kill()
        p.wait()
        rc = None
    if p in PROCS:
        PROCS.remove(p)
    return rc


def kill_leftovers():
    for p in list(PROCS):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        PROCS.remove(p)


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


# ---- Prometheus text --------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')


def scrape(url, timeout=10):
    t = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode("utf-8", "replace")
    sums, buckets, out_buckets = {}, {}, {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        try:
            v = float(value)
        except ValueError:
            continue
        sums[name] = sums.get(name, 0.0) + v
        if name in ("vigie_event_latency_seconds_bucket", "vigie_output_latency_seconds_bucket"):
            le = re.search(r'le="([^"]*)"', labels)
            if le:
                key = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
                into = buckets if name.startswith("vigie_event") else out_buckets
                into[key] = into.get(key, 0.0) + v
    # buckets: ingest -> processed by a shard; out_buckets: ingest -> output handed to its sink
    return {"t": t, "sums": sums, "buckets": buckets, "out_buckets": out_buckets}


def bucket_delta(before, after):
    """[[le, increase], ...] of cumulative buckets between two scrapes; le "+Inf" for the last."""
    return [["+Inf" if le == float("inf") else le, after[le] - before.get(le, 0.0)]
            for le in sorted(after.keys())]


def quantile(q, before, after):
    """histogram_quantile over the increase of the latency buckets between two scrapes."""
    les = sorted(after.keys())
    delta = [(le, after[le] - before.get(le, 0.0)) for le in les]
    if not delta or delta[-1][1] <= 0:
        return None
    total = delta[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in delta:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return None


# ---- the runs ---------------------------------------------------------------------------------

def run_ceiling(b, fmt, mode, seconds):
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    ceiling = start([b["ceiling"], "--endpoint", ep, "--mode", mode, "--duration", str(seconds),
                     "--idle", "3"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.2)
    load = start(b["load_cmd"](ep, fmt, seconds + 2) + ["--sent-ns"], stdout=subprocess.PIPE,
                 stderr=subprocess.DEVNULL, text=True)
    deadline = seconds + 60
    try:
        out, _ = ceiling.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        out = ""
    rc = finish(ceiling, 1)
    if load.poll() is None:
        load.send_signal(signal.SIGTERM)  # the ceiling has measured enough; the load stops cleanly
    try:
        lout, _ = load.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        lout = ""
    finish(load, 5)
    res = last_json_line(out or "")
    if rc != 0 or not res:
        raise RuntimeError(f"vigie-ceiling ({fmt}, {mode}) failed (exit {rc})")
    return {"eps": res["eps"], "events": res["events"], "seconds": res["seconds"],
            "bad": res["bad"], "transport_p50_us": res["latency_p50_us"],
            "transport_p99_us": res["latency_p99_us"],
            "load_eps": (last_json_line(lout or "") or {}).get("eps")}


# Added to the 200 rules for the half-rate latency runs (bench/probe/main.cc): every stamped event
# whose stamp's millisecond flips the rule's state for its device becomes an alert carrying the
# stamp (then and otherwise both fire one; a resolved alert repeats an older stamp and is not read).
PROBE_RULE = """  - name: bench-probe
    description: sender -> subscriber latency probe (bench/bench.py, vigie-probe)
    on: "*"
    where: exists(sent_ns)
    when: floor(sent_ns / 1000000) % 2 == 0
    then:
      - alert: {severity: info, summary: probe, labels: {sent_ns: "{sent_ns}"}}
    otherwise:
      - alert: {severity: info, summary: probe, labels: {sent_ns: "{sent_ns}"}}
"""


def write_config(tmp, rules_file, ports, shards=0, checkpoint="1s"):
    """The daemon's config for a bench run (also bench/latency.py's): loopback ports
    source, commands, alerts, http. The environment's EXTRA_CONFIG (YAML lines, e.g.
    "state_write_mib_per_s: 0") is appended, to compare a setting."""
    path = os.path.join(tmp, "vigie.yaml")
    with open(path, "w") as f:
        f.write(f"""# written by bench/bench.py
rules: {rules_file}
state_dir: {os.path.join(tmp, 'state')}
shards: {shards}
checkpoint_interval: {checkpoint}
timezone: Europe/Paris
location: {{lat: 47.322, lon: 5.041}}
max_message_bytes: 4194304
sources:
  - {{type: zmq, socket: pull, bind: "tcp://127.0.0.1:{ports[0]}"}}
sinks:
  commands: {{type: zmq, socket: pub, bind: "tcp://127.0.0.1:{ports[1]}", format: flatbuffers}}
  alerts: {{type: zmq, socket: pub, bind: "tcp://127.0.0.1:{ports[2]}", format: json}}
http: {{listen: "127.0.0.1:{ports[3]}"}}
""")
        extra = os.environ.get("EXTRA_CONFIG", "")
        if extra:
            f.write(extra.rstrip("\n") + "\n")
    return path


def wait_drained(http, limit_s=120):
    """Until vigie_events_processed_total stops moving (scraped every 0.5 s), at most limit_s."""
    prev = None
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        cur = scrape(http + "/metrics")["sums"].get("vigie_events_processed_total", 0.0)
        if cur == prev:
            return
        prev = cur
        time.sleep(0.5)
    raise RuntimeError(f"the daemon did not drain within {limit_s} s")


def run_daemon(b, fmt, rules_file, seconds, keep_logs, stop_deadline=180, warm=False,
               checkpoint="1s", rate=None, probe=False):
    """One daemon run: at the maximal rate, or at a fixed offered `rate` (events/s) for the
    latency at half the maximum rate. `probe`: the rules include PROBE_RULE; vigie-load stamps
    sent_ns and vigie-probe measures sender -> subscriber on the alerts socket."""
    tmp = tempfile.mkdtemp(prefix="vigie-bench-")
    ports = [free_port() for _ in range(4)]
    cfg = write_config(tmp, rules_file, ports, checkpoint=checkpoint)
    http = f"http://127.0.0.1:{ports[3]}"
    logf = open(os.path.join(tmp, "vigie.log"), "w")
    daemon = start([b["vigie"], "run", "--config", cfg], stdout=logf, stderr=subprocess.STDOUT,
                   cwd=tmp)
    try:
        # 1. ready, with a deadline (a big rule set takes a while to compile)
        deadline = time.monotonic() + 120
        while True:
            if daemon.poll() is not None:
                raise RuntimeError(f"vigie exited with {daemon.returncode} during start-up "
                                   f"(log {logf.name})")
            try:
                with urllib.request.urlopen(http + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vigie not ready after 120 s (log {logf.name})")
            time.sleep(0.1)
        # 1b. warm: every pre-built message once, drained, so that the groups the measured run
        # reaches exist already (as after a restart, which restores them from RocksDB)
        warm_s = 0.0
        if warm:
            t_warm = time.monotonic()
            subprocess.run(b["warm_cmd"](f"tcp://127.0.0.1:{ports[0]}", fmt), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300, check=True)
            wait_drained(http)
            warm_s = time.monotonic() - t_warm
        base = scrape(http + "/metrics")
        # 2. load at the maximal rate; measure the steady state between warm-up and the end
        cmd = b["load_cmd"](f"tcp://127.0.0.1:{ports[0]}", fmt, seconds)
        if rate:
            cmd += ["--rate", str(int(rate))]
        warm = min(2.0, seconds * 0.25)
        prober = None
        if probe:
            cmd += ["--sent-ns"]
            prober = start([b["probe"], "--endpoint", f"tcp://127.0.0.1:{ports[2]}", "--duration",
                            str(seconds), "--warmup", str(warm)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
            time.sleep(0.3)  # its subscription reaches the PUB socket before the first alert
        load = start(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        t0 = time.monotonic()
        time.sleep(warm)
        a = scrape(http + "/metrics")
        time.sleep(max(0.5, seconds - warm - 0.5 - (time.monotonic() - t0 - warm)))
        z = scrape(http + "/metrics")
        lout, _ = load.communicate(timeout=seconds + 60)
        lrc = finish(load, 5)
        if lrc != 0:
            raise RuntimeError(f"vigie-load exited with {lrc}")
        loadres = last_json_line(lout) or {}
        probed = {}
        if prober is not None:
            pout, _ = prober.communicate(timeout=seconds + 30)
            finish(prober, 5)
            probed = last_json_line(pout) or {}
        # 3. no separate drain: SIGTERM drains the queues and checkpoints (stop_s includes both)
        try:
            drained = scrape(http + "/metrics")
        except Exception:
            drained = z
        # 4. clean stop: SIGTERM drains and checkpoints; it must exit 0
        t_stop = time.monotonic()
        rc = finish(daemon, stop_deadline, signal.SIGTERM)
        stop_s = time.monotonic() - t_stop
        logf.close()
        if rc is None:
            raise RuntimeError(f"vigie did not exit within {stop_deadline} s of SIGTERM (log {logf.name})")
        if rc != 0:
            raise RuntimeError(f"vigie exited with {rc} on SIGTERM (log {logf.name})")
        s = lambda snap, k: snap["sums"].get(k, 0.0)
        dt = z["t"] - a["t"]
        # Events in = vigie_events_received_total (valid events decoded by the source); it runs
        # ahead while the shard queues fill. vigie_events_processed_total counts each event once,
        # however many shards it went to (since 24ead05: an event's copy for its last shard is
        # the original, and only originals are counted), plus the events no rule can match: its
        # rate is the throughput. (Up to 5beb04d this divided it again by the copies per event,
        # as if it counted copies: every daemon figure of RESULTS.md from 24ead05 to 5beb04d is
        # low by that factor, 1.44-1.52 with the 200-rule set.)
        received = s(z, "vigie_events_received_total") - s(a, "vigie_events_received_total")
        processed = s(z, "vigie_events_processed_total") - s(a, "vigie_events_processed_total")
        if received <= 0 or processed <= 0:
            raise RuntimeError(f"vigie processed nothing (log {logf.name})")
        # Copies per event (one per shard that needs it; an event no rule matches counts once),
        # for the raw results: what the routing costs.
        copies = (s(z, "vigie_events_routed_total") + s(z, "vigie_events_unmatched_total") -
                  s(a, "vigie_events_routed_total") - s(a, "vigie_events_unmatched_total"))
        per_event = copies / received if copies > 0 else 1.0
        p50 = quantile(0.5, a["buckets"], z["buckets"])
        p99 = quantile(0.99, a["buckets"], z["buckets"])
        ms = lambda v: v * 1000 if v is not None else None
        res = {
            "offered_eps": rate,
            "probes": probed.get("probes"),
            "probe_p50_ms": probed.get("p50_ms"),
            "probe_p99_ms": probed.get("p99_ms"),
            "probe_p999_ms": probed.get("p99.9_ms"),
            "latency_p999_ms": ms(quantile(0.999, a["buckets"], z["buckets"])),
            "output_p50_ms": ms(quantile(0.5, a["out_buckets"], z["out_buckets"])),
            "output_p99_ms": ms(quantile(0.99, a["out_buckets"], z["out_buckets"])),
            "output_p999_ms": ms(quantile(0.999, a["out_buckets"], z["out_buckets"])),
            # The histograms' increase over the measured interval, [le, count] (the CDF plot).
            "latency_buckets": bucket_delta(a["buckets"], z["buckets"]),
            "output_latency_buckets": bucket_delta(a["out_buckets"], z["out_buckets"]),
            "eps": processed / dt,
            "received_eps": received / dt,
            "copies_per_event": per_event,
            "shard_copies_eps": processed * per_event / dt,
            "queue_depth_end": s(z, "vigie_queue_depth"),
            "load_eps": loadres.get("eps"),
            "events_sent": loadres.get("events"),
            "processed_total": s(drained, "vigie_events_processed_total") - s(base, "vigie_events_processed_total"),
            "rejected_total": s(drained, "vigie_events_rejected_total") - s(base, "vigie_events_rejected_total"),
            "rss_mib": s(z, "process_resident_memory_bytes") / 1048576.0,
            "latency_p50_ms": p50 * 1000 if p50 is not None else None,
            "latency_p99_ms": p99 * 1000 if p99 is not None else None,
            "activations": s(drained, "vigie_rule_activations_total") - s(base, "vigie_rule_activations_total"),
            "groups": s(drained, "vigie_state_groups"),
            "groups_at_start": s(base, "vigie_state_groups"),
            "warm_s": warm_s,
            "stop_s": stop_s,
        }
        return res
    finally:
        if daemon.poll() is None:  # failure or interrupt: do not wait long for a clean stop
            finish(daemon, 10, signal.SIGTERM)
        if not logf.closed:
            logf.close()
        if keep_logs:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- report ------------------------------------------------------------------------------------

def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except Exception:
        commit = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
            "commit": commit, "date": datetime.datetime.now().isoformat(timespec="seconds")}


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault(r["name"], []).append(r)
    out = []
    for name, rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        eps = [r["eps"] for r in ok]

        def med(key):
            vals = [r[key] for r in ok if r.get(key) is not None]
            return statistics.median(vals) if vals else None
        out.append({"name": name, "kind": rs[0]["kind"], "format": rs[0]["format"], "runs": len(rs),
                    "failed": len(rs) - len(ok),
                    "median": statistics.median(eps) if eps else None,
                    "min": min(eps) if eps else None, "max": max(eps) if eps else None,
                    "p50": med("latency_p50_ms"), "p99": med("latency_p99_ms"),
                    "tp50": med("transport_p50_us"), "tp99": med("transport_p99_us"),
                    "rss": med("rss_mib"), "rejected": med("rejected_total"), "rules": rs[0].get("rules")})
    return out


def latency_section(rows, raw_dir, report_dir):
    """The latency at half the maximum rate: a table, and the CDF plot (raw_dir)."""
    lat = [r for r in rows if r["kind"] == "latency" and r.get("ok")]
    if not lat:
        return []

    def span(key):
        vals = [r[key] for r in lat if r.get(key) is not None]
        if not vals:
            return "–"
        if len(vals) == 1:
            return fmt_num(vals[0], 2)
        return f"{fmt_num(statistics.median(vals), 2)} ({fmt_num(min(vals), 2)}–{fmt_num(max(vals), 2)})"
    processed = statistics.median(r["eps"] for r in lat)
    lines = [
        "## Latency at half the maximum rate",
        "",
        f"The 200-rule set at {fmt_num(lat[0]['offered_eps'])} events/s offered (half the median of",
        f"daemon-fb-200-rules above; {fmt_num(processed)} processed), {len(lat)} run(s) of {lat[0]['seconds']} s",
        f"measured after a {min(2.0, lat[0]['seconds'] * 0.25):g} s warm-up. Percentiles are estimated from the daemon's histograms over the",
        "measured interval (as Prometheus' `histogram_quantile`); median (min–max) over the runs.",
        "",
        "| from → to | p50 (ms) | p99 (ms) | p99.9 (ms) |",
        "| --- | ---: | ---: | ---: |",
        f"| ingest → output handed to its sink (`vigie_output_latency_seconds`) | {span('output_p50_ms')} | "
        f"{span('output_p99_ms')} | {span('output_p999_ms')} |",
        f"| ingest → processed by its shards (`vigie_event_latency_seconds`) | {span('latency_p50_ms')} | "
        f"{span('latency_p99_ms')} | {span('latency_p999_ms')} |",
        f"| sender → subscriber, in-band (`sent_ns` of a message's first event; vigie-probe) | "
        f"{span('probe_p50_ms')} | {span('probe_p99_ms')} | {span('probe_p999_ms')} |",
        "",
        f"Sender → subscriber: vigie-load stamps the first event of each message with `sent_ns` (wall",
        f"clock, just before the send) and a probe rule (`PROBE_RULE` in bench/bench.py, added to the",
        f"200 rules for these runs) turns about every other stamped event into an alert carrying the",
        f"stamp; vigie-probe subscribes to the alerts socket and takes its own clock's time at receipt",
        f"(a median of {fmt_num(statistics.median([r['probes'] for r in lat if r.get('probes')] or [0]))} "
        "probes a run). It includes ZeroMQ both ways, the decoding of the whole message, the",
        "dispatcher and the JSON alert; it sees only the first event of each message, which its shard",
        "takes first.",
        "",
        "The target (issue 5): ingest → output p99 under 1 ms and p99.9 under 5 ms at half the maximum",
        "rate. Ingest is when the source received the event's message; a message's 256 events are",
        "decoded, then processed one after another by each shard that needs them.",
        "",
    ]
    try:
        import plots
        series = []
        for key, label in (("output_latency_buckets", "ingest → output"),
                           ("latency_buckets", "ingest → processed")):
            total = {}
            for r in lat:
                for le, c in r.get(key) or []:
                    le = float("inf") if le == "+Inf" else float(le)
                    total[le] = total.get(le, 0.0) + c
            pts = plots.cdf_points({}, total)
            # From the last bucket still empty to the first that holds every event.
            lo = max([i for i, (_, f) in enumerate(pts) if f == 0.0] or [0])
            hi = min([i for i, (_, f) in enumerate(pts) if f >= 1.0] or [len(pts) - 1])
            pts = pts[lo:hi + 1]
            if pts:
                series.append((label, pts))
        if series:
            svg = os.path.join(raw_dir, "latency-cdf.svg")
            plots.line_chart(svg, "Latency at half the maximum rate (200 rules)", "latency (ms)",
                             "fraction of events", series, log_x=True,
                             hlines=[("p99", 0.99)])
            lines += [f"![latency CDF]({os.path.relpath(svg, report_dir)})", ""]
    except Exception as e:  # noqa: BLE001 - a plot is a convenience: say so and go on
        log(f"latency plot not written: {e}")
    return lines


def throughput_plot(summ, ceilings, raw_dir, report_dir):
    """Events/s against the rule count (FlatBuffers, cold runs), with the ceiling and the target."""
    pts = sorted((s["rules"], s["median"]) for s in summ
                 if s["kind"] == "daemon" and s["format"] == "flatbuffers" and s["median"]
                 and s["name"] == f"daemon-fb-{s['rules']}-rules")
    if not pts:
        return []
    try:
        import plots
        svg = os.path.join(raw_dir, "throughput-vs-rules.svg")
        hl = []
        if ceilings.get("flatbuffers"):
            hl = [("raw ceiling", ceilings["flatbuffers"]), ("target: 40 %", 0.4 * ceilings["flatbuffers"])]
        plots.line_chart(svg, "Daemon throughput against the rule count (FlatBuffers, batches of 256)",
                         "rules", "events/s", [("vigie run, 2 shards", pts)], log_x=True, log_y=True,
                         hlines=hl)
        return [f"![throughput against rules]({os.path.relpath(svg, report_dir)})", ""]
    except Exception as e:  # noqa: BLE001
        log(f"throughput plot not written: {e}")
        return []


def write_report(path, args, mach, rows, commands, elapsed, raw_dir=None):
    raw_dir = raw_dir or os.path.dirname(path)
    summ = summarize(rows)
    ceilings = {s["format"]: s["median"] for s in summ if s["name"].startswith("ceiling-raw")}
    lines = [
        "# vigie benchmark results",
        "",
        f"Written by `bench/run-bench.sh{' --quick' if args.quick else ''}` on {mach['date']} at commit "
        f"`{mach['commit']}` in {elapsed:.0f} s. {'QUICK MODE (smoke test, short runs): indicative only.' if args.quick else ''}",
        "",
        "## Machine",
        "",
        f"- CPUs: {mach['nproc']} × {mach['cpu']}",
        f"- Memory: {mach['memory']}",
        f"- Kernel: Linux {mach['kernel']}",
        "- Everything (generator, receiver, daemon) runs on this machine over TCP loopback: the",
        "  generator takes a share of the CPUs the daemon would otherwise have.",
        "",
        "## Workload",
        "",
        f"- vigie-load: the city workload ({args.devices} devices, every event kind of config/rules, traffic",
        f"  skewed to a few busy junctions), {args.buffers} distinct pre-built messages of {args.batch} events,",
        "  cycled, sent at the maximal rate the receiver takes (blocking PUSH), events without `ts`",
        "  (the daemon stamps its ingest time).",
        "- Rules: generated by `bench/rulegen/rulegen.py N` (60 % stateless with `where`, 30 % windowed:",
        "  sliding/tumbling/count, 10 % absence).",
        f"- Each configuration runs {args.runs} time(s) for {args.seconds} s; the daemon's rate is measured",
        "  from /metrics between a scrape after the warm-up and one at",
        "  the end of the load: events/s is the rate of `vigie_events_processed_total`, which counts",
        "  each event once however many shards it went to (`copies_per_event` and `shard_copies_eps`",
        "  in the raw results: the copies the shards processed).",
        "",
        "## Results (events/s)",
        "",
        "| configuration | runs | median | min | max | ratio to ceiling | latency p50 / p99 (ms) | RSS (MiB) | rejected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summ:
        if s["kind"] == "latency":
            continue  # its own section below
        ratio = "–"
        if s["kind"] == "daemon" and s["median"] and ceilings.get(s["format"]):
            ratio = f"{s['median'] / ceilings[s['format']]:.2f}"
        elif s["name"].startswith("ceiling-raw"):
            ratio = "1.00"
        elif s["kind"] == "ceiling" and s["median"] and ceilings.get(s["format"]):
            ratio = f"{s['median'] / ceilings[s['format']]:.2f}"
        if s["kind"] == "daemon":
            lat = f"{fmt_num(s['p50'], 2)} / {fmt_num(s['p99'], 2)}"
        else:
            lat = (f"{fmt_num(s['tp50'] / 1000 if s['tp50'] and s['tp50'] > 0 else None, 2)} / "
                   f"{fmt_num(s['tp99'] / 1000 if s['tp99'] and s['tp99'] > 0 else None, 2)} (send→recv)")
        failed = f" ({s['failed']} failed)" if s["failed"] else ""
        lines.append(f"| {s['name']} | {s['runs']}{failed} | {fmt_num(s['median'])} | {fmt_num(s['min'])} | "
                     f"{fmt_num(s['max'])} | {ratio} | {lat} | {fmt_num(s['rss'], 1)} | "
                     f"{fmt_num(s['rejected'])} |")
    lines += [
        "",
        "- *ceiling-raw*: vigie-ceiling verifies (FlatBuffers) or parses (JSON, simdjson On Demand) each",
        "  batch and reads every event's kind and device; *ceiling-codec*: vigie's own decoders",
        "  (plugins/codec) building complete events. The ratio is to ceiling-raw of the same format.",
        "- *daemon-…*: `vigie run` with N generated rules (the rate of events taken in,",
        "  `received_eps`, is in the raw results: it runs ahead while the shard queues fill);",
        "  latency is `vigie_event_latency_seconds`",
        "  (ingest → processed, estimated from the histogram buckets over the measured interval).",
        "- The other daemon runs start from an empty state, so their 10 s include making the groups",
        "  (the 200-rule set makes about half a million, each written to RocksDB by the next",
        "  checkpoint). *…-warm*: first every pre-built message once and a wait until the daemon has",
        "  processed them (`warm_s` in the raw results), then the same measurement: the sustained rate",
        "  once the groups exist, as after a restart, which restores them from RocksDB.",
        "- Failures, if any, are in the raw results (`error`).",
        f"- The daemon's `checkpoint_interval`: {args.checkpoint}"
        + (" (its default)." if args.checkpoint == "1s" else " (not the default: a comparison run)."),
        "",
    ]
    lines += throughput_plot(summ, ceilings, raw_dir, os.path.dirname(path))
    lines += latency_section(rows, raw_dir, os.path.dirname(path))
    lines += [
        "## Commands",
        "",
        "```",
    ] + commands + ["```", "", f"Raw results: `{os.path.relpath(os.path.join(os.path.dirname(path), 'results'), ROOT) if not args.quick else os.path.relpath(os.path.dirname(path), ROOT)}` (runs.csv, runs.jsonl).", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return summ


def run_row(row, run, said):
    """Fills `row` with run()'s results and logs said(row); a failure is recorded in the row
    (`error`, reported, exit code 1), logged, and the leftover processes are killed. True if ok."""
    try:
        row.update(run())
        row["ok"] = True
        log(said(row))
        return True
    except Exception as e:  # noqa: BLE001 - recorded, reported, exit code 1
        row["ok"] = False
        row["error"] = str(e)
        log(f"  FAILED: {e}")
        kill_leftovers()
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke: one short run of each, under a minute")
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--runs", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--rules", help="comma-separated rule counts for the daemon runs")
    ap.add_argument("--devices", type=int, help="devices of the city workload (default 100000; quick 20000)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--buffers", type=int)
    ap.add_argument("--out", help="RESULTS.md path (default bench/RESULTS.md; quick: bench/results/quick/RESULTS.md)")
    ap.add_argument("--rules-dir", help="take rules-N.yaml from this directory instead of generating them")
    ap.add_argument("--ceiling-only", action="store_true", help="skip the daemon runs")
    ap.add_argument("--checkpoint", default="1s",
                    help="the daemon's checkpoint_interval (default 1s, the daemon's own default; "
                         "1h: no checkpoint round during a run, to measure what they cost)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the daemon's temp dirs and logs")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.buffers = args.buffers or (128 if args.quick else 1024)
    args.devices = args.devices or (20000 if args.quick else 100000)
    rule_counts = [int(x) for x in (args.rules or ("200" if args.quick else "10,200,1000,10000")).split(",")]
    if args.out:
        out = os.path.abspath(args.out)
    elif args.quick:
        out = os.path.join(ROOT, "bench", "results", "quick", "RESULTS.md")
    else:
        out = os.path.join(ROOT, "bench", "RESULTS.md")
    raw_dir = os.path.dirname(out) if args.quick or args.out else os.path.join(ROOT, "bench", "results")
    os.makedirs(raw_dir, exist_ok=True)

    bdir = args.build_dir if os.path.isabs(args.build_dir) else os.path.join(ROOT, args.build_dir)
    b = {"vigie": os.path.join(bdir, "daemon", "vigie"), "load": os.path.join(bdir, "bench", "vigie-load"),
         "ceiling": os.path.join(bdir, "bench", "vigie-ceiling"),
         "probe": os.path.join(bdir, "bench", "vigie-probe")}
    need = ["load", "ceiling"] + ([] if args.ceiling_only else ["vigie", "probe"])
    missing = [b[k] for k in need if not os.access(b[k], os.X_OK)]
    if missing:
        log(f"missing binaries: {', '.join(missing)} (build first, or --build-dir)")
        return 2
    b["load_cmd"] = lambda ep, fmt, secs: [b["load"], "--endpoint", ep, "--format", fmt, "--duration",
                                          str(secs), "--devices", str(args.devices), "--batch",
                                          str(args.batch), "--buffers", str(args.buffers)]
    # The warm-up of the *-warm runs: every pre-built message once (the same messages and seed).
    b["warm_cmd"] = lambda ep, fmt: b["load_cmd"](ep, fmt, 300) + ["--messages", str(args.buffers)]

    def on_signal(signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    mach = machine()
    t_start = time.monotonic()
    rows, commands, failures = [], [], 0
    rules_dir = tempfile.mkdtemp(prefix="vigie-bench-rules-")
    plan = []
    ceiling_modes = ["raw"] if args.quick else ["raw", "codec"]
    for fmt in ("flatbuffers", "json"):
        for mode in ceiling_modes:
            plan.append(("ceiling", fmt, mode, None))
    if not args.ceiling_only:
        for n in rule_counts:
            plan.append(("daemon", "flatbuffers", None, n))
        if 200 in rule_counts and not args.quick:
            plan.append(("daemon", "json", None, 200))
            plan.append(("daemon-warm", "flatbuffers", None, 200))
    try:
        for kind, fmt, mode, n in plan:
            short = "fb" if fmt == "flatbuffers" else "json"
            warm = kind == "daemon-warm"
            kind = "daemon" if warm else kind
            name = (f"ceiling-{mode}-{short}" if kind == "ceiling"
                    else f"daemon-{short}-{n}-rules" + ("-warm" if warm else ""))
            runs = args.runs if (kind == "ceiling" or n in (200,) or args.quick) else 1
            rules_file = None
            if kind == "daemon":
                rules_file = os.path.join(args.rules_dir or rules_dir, f"rules-{n}.yaml")
                if args.rules_dir:
                    rules_file = os.path.abspath(rules_file)
                    if not os.path.exists(rules_file):
                        log(f"missing {rules_file}")
                        return 2
                elif not os.path.exists(rules_file):
                    with open(rules_file, "w") as f:
                        # The place rules must name places vigie-load sends: same device count.
                        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "rulegen", "rulegen.py"),
                                        "--devices", str(args.devices), str(n)], stdout=f, check=True,
                                       timeout=120)
                commands.append(f"bench/rulegen/rulegen.py --devices {args.devices} {n} > rules-{n}.yaml")
                commands.append(f"vigie run --config <tmp>/vigie.yaml   # rules: rules-{n}.yaml, state_dir: <tmp>/state")
                if warm:
                    commands.append(" ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                             for x in b["warm_cmd"]("tcp://127.0.0.1:<port>", fmt))
                                    + "   # warm-up, then wait until processed stops moving")
                commands.append(" ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                         for x in b["load_cmd"]("tcp://127.0.0.1:<port>", fmt, args.seconds)))
            else:
                commands.append(f"{os.path.relpath(b['ceiling'], ROOT)} --endpoint tcp://127.0.0.1:<port> "
                                f"--mode {mode} --duration {args.seconds} --idle 3")
                commands.append(" ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                         for x in b["load_cmd"]("tcp://127.0.0.1:<port>", fmt, args.seconds + 2))
                                + " --sent-ns")
            for i in range(runs):
                log(f"{name} run {i + 1}/{runs}")
                row = {"name": name, "kind": kind, "format": fmt, "mode": mode, "rules": n, "run": i + 1,
                       "seconds": args.seconds}
                if kind == "ceiling":
                    run = lambda: run_ceiling(b, fmt, mode, args.seconds)
                else:
                    run = lambda: run_daemon(b, fmt, rules_file, args.seconds, args.keep_logs,
                                             stop_deadline=90 if args.quick else 180, warm=warm,
                                             checkpoint=args.checkpoint)
                if not run_row(row, run, lambda r: f"  {r['eps']:,.0f} events/s"):
                    failures += 1
                rows.append(row)
        # The latency at half the maximum rate (issue 5's latency target): the 200-rule set at
        # half the median rate just measured, ingest -> processed and ingest -> output.
        top = [r["eps"] for r in rows if r.get("ok") and r["name"] == "daemon-fb-200-rules"]
        if top and not args.ceiling_only:
            rate = statistics.median(top) / 2
            name = "daemon-fb-200-rules-half-rate"
            secs = 3 if args.quick else 15
            rules_file = os.path.join(rules_dir, "rules-200-probe.yaml")
            with open(os.path.join(args.rules_dir or rules_dir, "rules-200.yaml")) as f:
                text = f.read()
            with open(rules_file, "w") as f:
                f.write(text.rstrip("\n") + "\n" + PROBE_RULE)
            commands.append("(rules-200.yaml; PROBE_RULE of bench/bench.py) > rules-200-probe.yaml")
            commands.append(f"vigie run --config <tmp>/vigie.yaml   # rules: rules-200-probe.yaml, state_dir: <tmp>/state")
            commands.append(f"{os.path.relpath(b['probe'], ROOT)} --endpoint tcp://127.0.0.1:<alerts port> "
                            f"--duration {secs} --warmup {min(2.0, secs * 0.25):g}")
            commands.append(" ".join(os.path.relpath(x, ROOT) if x.startswith(ROOT) else x
                                     for x in b["load_cmd"]("tcp://127.0.0.1:<port>", "flatbuffers", secs))
                            + f" --rate {int(rate)} --sent-ns   # half of daemon-fb-200-rules' median")
            for i in range(args.runs):
                log(f"{name} run {i + 1}/{args.runs} at {rate:,.0f} events/s")
                row = {"name": name, "kind": "latency", "format": "flatbuffers", "mode": None, "rules": 200,
                       "run": i + 1, "seconds": secs}
                run = lambda: run_daemon(b, "flatbuffers", os.path.abspath(rules_file), secs, args.keep_logs,
                                         stop_deadline=90 if args.quick else 180,
                                         checkpoint=args.checkpoint, rate=rate, probe=True)
                said = lambda r: (f"  ingest->output p50 {fmt_num(r['output_p50_ms'], 2)} ms, "
                                  f"p99 {fmt_num(r['output_p99_ms'], 2)} ms, "
                                  f"p99.9 {fmt_num(r['output_p999_ms'], 2)} ms; "
                                  f"sender->subscriber p50 {fmt_num(r['probe_p50_ms'], 2)} ms, "
                                  f"p99 {fmt_num(r['probe_p99_ms'], 2)} ms ({fmt_num(r['probes'])} probes)")
                if not run_row(row, run, said):
                    failures += 1
                rows.append(row)
    except KeyboardInterrupt:
        log("interrupted")
        failures += 1
    finally:
        kill_leftovers()
        shutil.rmtree(rules_dir, ignore_errors=True)

    keys = ["name", "kind", "format", "mode", "rules", "run", "seconds", "ok", "eps", "load_eps",
            "events_sent", "received_eps", "copies_per_event", "shard_copies_eps", "queue_depth_end", "processed_total", "rejected_total", "rss_mib", "latency_p50_ms",
            "latency_p99_ms", "latency_p999_ms", "offered_eps", "output_p50_ms", "output_p99_ms",
            "output_p999_ms", "probes", "probe_p50_ms", "probe_p99_ms", "probe_p999_ms", "transport_p50_us", "transport_p99_us", "activations", "groups",
            "groups_at_start", "warm_s", "stop_s", "error"]
    with open(os.path.join(raw_dir, "runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    with open(os.path.join(raw_dir, "runs.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps({"machine": mach, **r}) + "\n")
    summ = write_report(out, args, mach, rows, commands, time.monotonic() - t_start, raw_dir)
    for s in summ:
        log(f"{s['name']:28s} median {fmt_num(s['median']):>12s} events/s  (min {fmt_num(s['min'])}, "
            f"max {fmt_num(s['max'])}, {s['runs']} runs, {s['failed']} failed)")
    log(f"wrote {os.path.relpath(out, ROOT)} in {time.monotonic() - t_start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
