#!/usr/bin/env python3
"""Draws scripts/soak.sh's samples.csv as an SVG (one small panel per series,
one line per node) and prints each series' least-squares slope per hour
after the first fifth of the run (connects and warm-up), the "is it flat"
figure, per node. A CSV without a node column is one node.

usage: soak_plot.py samples.csv out.svg
"""
import csv
import sys

UNITS = {"rss_bytes": ("RSS", "MiB", 1 << 20), "heap_bytes": ("Go heap", "MiB", 1 << 20),
         "goroutines": ("goroutines", "", 1), "open_fds": ("open fds", "", 1),
         "wal_bytes": ("SQLite WAL", "MiB", 1 << 20)}
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 180, 60, 20, 30, 30
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def slope_per_hour(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600


def panel(x0, y0, title, unit, series):
    """series: [(node, ts, ys)], one line each."""
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}{" (" + unit + ")" if unit else ""}</text>']
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    lo = min(min(ys) for _, _, ys in series)
    hi = max(max(ys) for _, _, ys in series)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    tmax = max(max(ts) for _, ts, _ in series) or 1
    out.append(f'<rect x="{PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>')
    for k, (node, ts, ys) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        pts = " ".join(f"{PAD_L + t / tmax * iw:.1f},{PAD_T + (1 - (y - lo) / (hi - lo)) * ih:.1f}" for t, y in zip(ts, ys))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if len(series) > 1:
            out.append(f'<text x="{PAD_L + 4 + 50 * k}" y="{PAD_T + 12}" font-size="10" fill="{color}">node {node}</text>')
    for v, yy in ((hi, PAD_T), (lo, PAD_T + ih)):
        out.append(f'<text x="{PAD_L - 4}" y="{yy + 4}" text-anchor="end" font-size="10">{v:.4g}</text>')
    out.append(f'<text x="{PAD_L + iw}" y="{H - 8}" text-anchor="end" font-size="10">{tmax / 60:.1f} min</text>')
    out.append("</g>")
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        rows = [r for r in csv.DictReader(f) if all(r.values())]
    if not rows:
        sys.exit("soak_plot: no samples")
    nodes = sorted({r.get("node", "1") for r in rows}, key=lambda n: (len(n), n))
    by_node = {n: [r for r in rows if r.get("node", "1") == n] for n in nodes}
    tmax = max(float(r["t_s"]) for r in rows)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{3 * H}" font-family="sans-serif">']
    cols = [c for c in UNITS if c != "wal_bytes" or any(float(r[c]) for r in rows)]  # no WAL on PostgreSQL
    for i, (col, (title, unit, div)) in enumerate((c, UNITS[c]) for c in cols):
        series = []
        for n in nodes:
            ts = [float(r["t_s"]) for r in by_node[n]]
            ys = [float(r[col]) / div for r in by_node[n]]
            series.append((n, ts, ys))
            # Slopes skip the first fifth of the run: the connect phase and warm-up.
            steady = [k for k, t in enumerate(ts) if t >= 0.2 * tmax]
            slope = slope_per_hour([ts[k] for k in steady], [ys[k] for k in steady])
            who = f" node {n}" if len(nodes) > 1 else ""
            print(f"{title}{who}: first {ys[0]:.4g}, last {ys[-1]:.4g}, max {max(ys):.4g}, slope after the first fifth {slope:+.4g} {unit or 'units'}/h")
        svg += panel((i % 2) * W, (i // 2) * H, title, unit, series)
    svg.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
