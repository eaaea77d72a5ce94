#!/usr/bin/env python3
"""Draws scripts/soak.sh's samples.csv as an SVG (one small panel per series)
and prints each series' least-squares slope per hour after the first fifth
of the run (connects and warm-up), the "is it flat" figure.

usage: soak_plot.py samples.csv out.svg
"""
import csv
import sys

UNITS = {"rss_bytes": ("RSS", "MiB", 1 << 20), "heap_bytes": ("Go heap", "MiB", 1 << 20),
         "goroutines": ("goroutines", "", 1), "open_fds": ("open fds", "", 1),
         "wal_bytes": ("SQLite WAL", "MiB", 1 << 20)}
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 180, 60, 20, 30, 30


def slope_per_hour(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600


def panel(x0, y0, title, unit, ts, ys):
    out = [f'<g transform="translate({x0},{y0})">',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}{" (" + unit + ")" if unit else ""}</text>']
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    tmax = max(ts) or 1
    pts = " ".join(f"{PAD_L + t / tmax * iw:.1f},{PAD_T + (1 - (y - lo) / (hi - lo)) * ih:.1f}" for t, y in zip(ts, ys))
    out.append(f'<rect x="{PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>')
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
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
    ts = [float(r["t_s"]) for r in rows]
    # Slopes skip the first fifth of the run: the connect phase and warm-up.
    steady = [i for i, t in enumerate(ts) if t >= 0.2 * max(ts)]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{3 * H}" font-family="sans-serif">']
    for i, (col, (title, unit, div)) in enumerate(UNITS.items()):
        ys = [float(r[col]) / div for r in rows]
        svg += panel((i % 2) * W, (i // 2) * H, title, unit, ts, ys)
        slope = slope_per_hour([ts[i] for i in steady], [ys[i] for i in steady])
        print(f"{title}: first {ys[0]:.4g}, last {ys[-1]:.4g}, max {max(ys):.4g}, slope after the first fifth {slope:+.4g} {unit or 'units'}/h")
    svg.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
