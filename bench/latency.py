#!/usr/bin/env python3
"""Ingest-to-processed latency of the daemon at a fixed offered rate (issue 5: p99 < 1 ms and
p99.9 < 5 ms at half the maximum rate).

  bench/latency.py RULES --rate 120000 [--seconds 10] [--warmup 3] [--devices 100000]
                   [--batch 256] [--checkpoint 1s] [--shards 2]

Starts build/daemon/vigie (BUILD_DIR to change) on free loopback ports with a temporary state
dir, 2 shards and checkpoint_interval 1s (--shards, --checkpoint; 1h = no checkpoint during the
run, to isolate its share), sends FlatBuffers batches of 256 (--batch) from vigie-load at
--rate events/s, and reads `vigie_event_latency_seconds` (ingest -> processed, per event) and
`vigie_output_latency_seconds` (ingest -> an output handed to its sink, for outputs of events)
from /metrics after a warm-up and at the end: p50/p99/p99.9 over the measured interval, interpolated
within the histogram's buckets (... 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5 ms ...), as Prometheus'
histogram_quantile does. Also prints the processed rate, so that a rate the daemon cannot carry
shows as such (its latency then measures queueing). Everything binds 127.0.0.1 and stops by
itself. Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (scrape, quantile, free_port, write_config)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rules")
    ap.add_argument("--rate", type=float, required=True, help="offered events per second")
    ap.add_argument("--seconds", type=float, default=10, help="measured interval")
    ap.add_argument("--warmup", type=float, default=3, help="seconds sent before measuring")
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256, help="events per message")
    ap.add_argument("--checkpoint", default="1s", help="checkpoint_interval of the daemon")
    args = ap.parse_args()
    build = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
    ports = [bench.free_port() for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench.write_config(tmp, os.path.abspath(args.rules), ports, shards=args.shards,
                                 checkpoint=args.checkpoint)
        log = open(os.path.join(tmp, "daemon.log"), "w")
        daemon = subprocess.Popen([os.path.join(build, "daemon", "vigie"), "run", "--config", cfg],
                                  stderr=log)
        url = f"http://127.0.0.1:{ports[3]}/metrics"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    bench.scrape(url)
                    break
                except OSError:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        print("daemon did not start; see its log", file=sys.stderr)
                        return 1
                    time.sleep(0.1)
            load = subprocess.Popen(
                [os.path.join(build, "bench", "vigie-load"), "--endpoint",
                 f"tcp://127.0.0.1:{ports[0]}", "--rate", str(args.rate), "--duration",
                 str(args.warmup + args.seconds + 1), "--devices", str(args.devices),
                 "--batch", str(args.batch)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(args.warmup)
            a = bench.scrape(url)
            time.sleep(args.seconds)
            b = bench.scrape(url)
            load.wait(timeout=args.warmup + args.seconds + 60)
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        dt = b["t"] - a["t"]
        processed = (b["sums"].get("vigie_events_processed_total", 0)
                     - a["sums"].get("vigie_events_processed_total", 0)) / dt
        res = {"tool": "latency", "rules": args.rules, "offered_eps": args.rate,
               "batch": args.batch, "checkpoint": args.checkpoint, "shards": args.shards,
               "processed_eps": round(processed)}
        for q in (0.5, 0.99, 0.999):
            v = bench.quantile(q, a["buckets"], b["buckets"])
            res[f"p{q * 100:g}_ms"] = None if v is None else round(v * 1000, 3)
            v = bench.quantile(q, a["out_buckets"], b["out_buckets"])
            res[f"output_p{q * 100:g}_ms"] = None if v is None else round(v * 1000, 3)
        outputs = (b["sums"].get("vigie_output_latency_seconds_count", 0)
                   - a["sums"].get("vigie_output_latency_seconds_count", 0))
        res["outputs"] = round(outputs)
        print(f"offered {args.rate:,.0f} ev/s, processed {processed:,.0f} ev/s; ingest->processed "
              f"p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, p99.9 {res['p99.9_ms']} ms")
        print(f"ingest->output sent ({res['outputs']:,} outputs of events): "
              f"p50 {res['output_p50_ms']} ms, p99 {res['output_p99_ms']} ms, "
              f"p99.9 {res['output_p99.9_ms']} ms")
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
