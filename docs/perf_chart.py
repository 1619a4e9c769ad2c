#!/usr/bin/env python3
"""Draws docs/perf.svg from pulse-load's markdown tables: memory per
connection and server CPU per round trip against N, for each server. The
first file holds the idle rows (10 s after connecting); the second, if
given, the plateau rows (equal round trips per connection), drawn dashed
in the memory panel.

    python3 docs/perf_chart.py idle.md [plateau.md] > docs/perf.svg
"""
import math
import sys

COLORS = {"mio": "#1b7f3b", "smol": "#1f5fbf", "pulse-tokio": "#8e44ad", "tokio": "#c0392b", "floor-1ms": "#777777"}
LABELS = {
    "mio": "pulse-mio",
    "smol": "pulse-smol",
    "pulse-tokio": "pulse-tokio",
    "tokio": "tokio reference",
    "floor-1ms": "floor (bare syscalls)",
}


def median(cell):
    return float(cell.split("(")[0].strip())


def rows(lines):
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in COLORS and cells[1].isdigit():
            yield cells[0], int(cells[1]), median(cells[2]), median(cells[3])


def panel(x0, title, unit, series, log, dashed=None):
    dashed = dashed or {}
    w, h, left, top = 420, 260, 60, 40
    ns = sorted({n for points in series.values() for n, _ in points})
    values = [v for group in (series, dashed) for points in group.values() for _, v in points]
    lo, hi = (min(values) / 1.5, max(values) * 1.5) if log else (0, max(values) * 1.15)
    def sx(n):
        return x0 + left + (ns.index(n) + 0.5) / len(ns) * (w - left - 10)
    def sy(v):
        if log:
            return top + h - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * h
        return top + h - (v - lo) / (hi - lo) * h
    out = [f'<text x="{x0 + w / 2}" y="22" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<line x1="{x0 + left}" y1="{top + h}" x2="{x0 + w - 10}" y2="{top + h}" stroke="#333"/>',
           f'<line x1="{x0 + left}" y1="{top}" x2="{x0 + left}" y2="{top + h}" stroke="#333"/>',
           f'<text x="{x0 + w / 2}" y="{top + h + 36}" text-anchor="middle">connections (N)</text>',
           f'<text x="{x0 + 14}" y="{top + h / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {top + h / 2})">{unit}</text>']
    for n in ns:
        out.append(f'<text x="{sx(n)}" y="{top + h + 16}" text-anchor="middle">{n:,}</text>')
    ticks = [10 ** e for e in range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1)] if log else \
        [hi * i / 4 for i in range(5)]
    for t in ticks:
        if lo <= t <= hi:
            label = f"{t:,.0f}" if t >= 1 else f"{t:g}"
            out.append(f'<text x="{x0 + left - 6}" y="{sy(t) + 4}" text-anchor="end" fill="#555">{label}</text>')
            out.append(f'<line x1="{x0 + left}" y1="{sy(t)}" x2="{x0 + w - 10}" y2="{sy(t)}" stroke="#ddd"/>')
    lines = [(name, points, "") for name, points in series.items()]
    lines += [(name, points, ' stroke-dasharray="6 4"') for name, points in dashed.items()]
    for name, points, dash in lines:
        points = sorted(points)
        path = " ".join(f"{sx(n):.1f},{sy(v):.1f}" for n, v in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[name]}" stroke-width="2.5"{dash}/>')
        for n, v in points:
            out.append(f'<circle cx="{sx(n):.1f}" cy="{sy(v):.1f}" r="3.5" fill="{COLORS[name]}"/>')
    return out


def main():
    memory, cpu, plateau = {}, {}, {}
    with open(sys.argv[1]) as idle:
        for name, n, mem, us in rows(idle):
            memory.setdefault(name, []).append((n, max(mem, 1)))
            cpu.setdefault(name, []).append((n, us))
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as table:
            for name, n, mem, _ in rows(table):
                plateau.setdefault(name, []).append((n, max(mem, 1)))
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="880" height="390" font-family="sans-serif" font-size="12">',
           '<rect width="880" height="390" fill="white"/>']
    svg += panel(0, "Memory per idle connection (log scale)", "bytes", memory, True, plateau)
    svg += panel(440, "Server CPU per heartbeat round trip", "microseconds", cpu, False)
    x = 70
    for name in memory:
        svg.append(f'<rect x="{x}" y="352" width="14" height="4" fill="{COLORS[name]}"/>')
        svg.append(f'<text x="{x + 20}" y="358">{LABELS[name]}</text>')
        x += 160
    if plateau:
        svg.append('<line x1="70" y1="374" x2="90" y2="374" stroke="#333" stroke-dasharray="6 4" stroke-width="2"/>')
        svg.append('<text x="96" y="378">dashed: memory at the plateau (equal round trips per connection)</text>')
    svg.append("</svg>")
    print("\n".join(svg))


if __name__ == "__main__":
    main()
