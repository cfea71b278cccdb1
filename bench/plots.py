"""Minimal SVG charts for the benchmark report (Python 3 standard library only).

line_chart() writes a line chart (optional log axes and dashed reference lines) to an SVG file;
cdf_points() turns two scrapes of a Prometheus histogram into CDF points in milliseconds.
"""

import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 700, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 50
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf"]
FONT = 'font-family="sans-serif"'


def _fmt(v):
    """Compact tick label: 1k, 10k, 1M, 0.5, 2."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _linear_ticks(lo, hi):
    """Return (lo, hi, ticks) widened to a 'nice' step of 1, 2 or 5 x 10^k (4-6 ticks)."""
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10, 20):
        step = m * mag
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if step >= raw * (1 - 1e-9) and last - first <= 5:
            break
    ticks = [i * step for i in range(first, last + 1)]
    return ticks[0], ticks[-1], ticks


def _log_ticks(lo, hi):
    """Return (lo, hi, ticks) for a base-10 log axis spanning whole decades."""
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if e1 <= e0:
        e1 = e0 + 1
    mults = (1, 2, 5) if e1 - e0 < 3 else (1,)
    ticks = [m * 10.0 ** e for e in range(e0, e1 + 1) for m in mults if m == 1 or e < e1]
    return 10.0 ** e0, 10.0 ** e1, ticks


def _axis(values, log, length, flip):
    """Build (ticks, to_px) for one axis; to_px maps a data value to a pixel offset."""
    if log:
        lo, hi, ticks = _log_ticks(min(values, default=1.0), max(values, default=10.0))
        a, b = math.log10(lo), math.log10(hi)
        f = math.log10
    else:
        lo, hi, ticks = _linear_ticks(min(values, default=0.0), max(values, default=1.0))
        a, b = lo, hi
        f = float

    def to_px(v):
        t = (f(v) - a) / (b - a)
        return (1 - t) * length if flip else t * length
    return ticks, to_px


def _ok(v, log):
    return math.isfinite(v) and (v > 0 or not log)


def line_chart(path, title, x_label, y_label, series, log_x=False, log_y=False, hlines=None):
    """Write an SVG line chart to path. series: [(name, [(x, y), ...])]; hlines: [(label, y)]."""
    hlines = [(lab, float(y)) for lab, y in (hlines or []) if _ok(float(y), log_y)]
    clean = []
    for name, pts in series:
        pts = [(float(x), float(y)) for x, y in pts]
        clean.append((name, [(x, y) for x, y in pts if _ok(x, log_x) and _ok(y, log_y)]))
    xs = [x for _, pts in clean for x, _ in pts]
    ys = [y for _, pts in clean for _, y in pts] + [y for _, y in hlines]
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xticks, xpx = _axis(xs, log_x, pw, False)
    yticks, ypx = _axis(ys, log_y, ph, True)

    def px(x, y):
        return LEFT + xpx(x), TOP + ypx(y)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" {FONT}>',
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2:.1f}" y="24" font-size="14" font-weight="bold" '
           f'text-anchor="middle">{escape(title)}</text>']
    # Grid lines and tick labels.
    for t in xticks:
        x = LEFT + xpx(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" font-size="11" '
                   f'text-anchor="middle">{escape(_fmt(t))}</text>')
    for t in yticks:
        y = TOP + ypx(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" '
                   f'text-anchor="end">{escape(_fmt(t))}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    # Axis labels.
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{HEIGHT - 12}" font-size="12" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    cy = TOP + ph / 2
    out.append(f'<text x="16" y="{cy:.1f}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 16 {cy:.1f})">{escape(y_label)}</text>')
    # Reference lines, labelled at their right end.
    for label, yv in hlines:
        y = TOP + ypx(yv)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#555" '
                   f'stroke-dasharray="6,4"/>')
        ty = y + 13 if y - TOP < 14 else y - 4  # keep the label inside the plot near the top
        out.append(f'<text x="{LEFT + pw - 4}" y="{ty:.1f}" font-size="11" fill="#555" '
                   f'text-anchor="end">{escape(label)}</text>')
    # Series and legend (legend sits in the right margin).
    for i, (name, pts) in enumerate(clean):
        colour = PALETTE[i % len(PALETTE)]
        coords = [px(x, y) for x, y in pts]
        if len(coords) > 1:
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in coords:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        lx, ly = LEFT + pw + 12, TOP + 10 + 18 * i
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 20}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"/>')
        out.append(f'<circle cx="{lx + 10}" cy="{ly}" r="3" fill="{colour}"/>')
        out.append(f'<text x="{lx + 26}" y="{ly + 4}" font-size="12">{escape(str(name))}</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


def cdf_points(before, after):
    """CDF [(le_ms, fraction)] from two scrapes {le_seconds: cumulative_count} of one histogram."""
    def inc(le):
        return after.get(le, 0) - before.get(le, 0)
    if not after:
        return []
    total = inc(math.inf) if math.inf in after else inc(max(after))
    if total <= 0:
        return []
    return [(le * 1000.0, inc(le) / total) for le in sorted(after) if math.isfinite(le)]


if __name__ == "__main__":
    import os
    import tempfile
    import xml.etree.ElementTree as ET

    tmp = tempfile.mkdtemp(prefix="vigie-plots-")
    rates = [100, 300, 1000, 3000, 10000, 30000, 100000]
    scaling = os.path.join(tmp, "scaling.svg")
    line_chart(scaling, "Throughput vs offered load <demo & test>", "offered events/s", "handled events/s",
               [("1 worker", [(r, min(r, 20000.0)) for r in rates]),
                ("4 workers", [(r, min(r, 70000.0)) for r in rates] + [(0, 5.0)])],
               log_x=True)
    bounds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01]
    before = {le: 10 * i for i, le in enumerate(bounds)}
    before[math.inf] = 60
    after = {le: before[le] + c for le, c in zip(bounds, [50, 400, 800, 950, 990, 998, 1000])}
    after[math.inf] = before[math.inf] + 1000
    pts = cdf_points(before, after)
    assert pts[-1] == (10.0, 1.0) and cdf_points({}, {}) == [], pts
    cdf = os.path.join(tmp, "cdf.svg")
    line_chart(cdf, "Event latency CDF", "latency (ms)", "fraction of events", [("after - before", pts)],
               log_x=True, hlines=[("target p99 1 ms", 0.99), ("median", 0.5)])
    for p in (scaling, cdf):
        ET.parse(p)
        text = open(p, encoding="utf-8").read()
        assert "nan" not in text.lower() and 'width="-' not in text and 'height="-' not in text, p
        print("ok", p)
