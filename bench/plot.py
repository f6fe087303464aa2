#!/usr/bin/env python3
"""Throughput against correctness, one labelled point per tool, from bench/work/peers.json (written
by bench/run.sh) to an SVG.  Standard library only, so it runs anywhere.

Usage: python3 bench/plot.py [PEERS_JSON] [OUT_SVG]   (defaults bench/work/peers.json, bench/peers.svg)

x: `umbra synth check` score on the small corpus (%, linear); y: files/s on the ct512 corpus (log).
The dashed horizontal line is cp -r's throughput (the copy floor: nothing can be much faster), the
dotted vertical line cp -r's score (a copy that removes nothing).
"""
import json
import math
import sys
from html import escape

src = sys.argv[1] if len(sys.argv) > 1 else "bench/work/peers.json"
dst = sys.argv[2] if len(sys.argv) > 2 else "bench/peers.svg"
data = json.load(open(src))
tools = [t for t in data["tools"] if t.get("files_per_s") and t.get("score_pct") is not None]
if not tools:
    sys.exit("plot.py: no tool has both a throughput and a score")
cp = next((t for t in tools if t["slug"] == "cp"), None)

W, H = 760, 500
L, R, T, B = 80, 40, 60, 70  # margins
pw, ph = W - L - R, H - T - B

x_lo = 0.0
x_hi = 100.0
ys = [t["files_per_s"] for t in tools]
y_lo = 10 ** math.floor(math.log10(min(ys)))
y_hi = 10 ** math.ceil(math.log10(max(ys) * 1.15))


def px(score):
    return L + (score - x_lo) / (x_hi - x_lo) * pw


def py(fps):
    return T + ph - (math.log10(fps) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * ph


out = []
o = out.append
o(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
  'font-family="sans-serif" font-size="12">')
o(f'<rect width="{W}" height="{H}" fill="white"/>')
meta = data.get("meta", {})
o(f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
  'De-identifiers: throughput against correctness</text>')
sub = f"{meta.get('date', '')} · {meta.get('machine', '')}"
o(f'<text x="{W / 2}" y="42" text-anchor="middle" fill="#555">{escape(sub)}</text>')

# grid and axes
for s in range(0, 101, 10):
    x = px(s)
    o(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#eee"/>')
    o(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{s}</text>')
e = int(math.log10(y_lo))
while 10 ** e <= y_hi:
    for m in (1, 2, 5):
        v = m * 10 ** e
        if y_lo <= v <= y_hi:
            y = py(v)
            o(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="{"#ddd" if m == 1 else "#f3f3f3"}"/>')
            o(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    e += 1
o(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
o(f'<text x="{L + pw / 2}" y="{H - 28}" text-anchor="middle">'
  'score % on the small synth corpus (umbra synth check)</text>')
o(f'<text x="18" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {T + ph / 2})">'
  'files/s on the ct512 corpus (log scale)</text>')

if cp:
    y = py(cp["files_per_s"])
    o(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#888" stroke-dasharray="6 4"/>')
    o(f'<text x="{L + pw * 0.4:.1f}" y="{y - 6:.1f}" text-anchor="middle" fill="#666">'
      f'cp -r: {cp["files_per_s"]:.0f} files/s (copy floor)</text>')
    x = px(cp["score_pct"])
    o(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#888" stroke-dasharray="2 3"/>')
    o(f'<text x="{x + 4:.1f}" y="{T + ph - 6}" fill="#666">cp -r score (nothing removed)</text>')

# points, labels nudged apart vertically when close
placed = []
for t in sorted(tools, key=lambda t: -t["files_per_s"]):
    x, y = px(t["score_pct"]), py(t["files_per_s"])
    umbra = t["slug"].startswith("umbra")
    color = "#c0392b" if umbra else ("#777" if t["slug"] == "cp" else "#2c6fbb")
    o(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"/>')
    label = f'{t["tool"]} ({t["score_pct"]:.1f}%, {t["files_per_s"]:.0f}/s)'
    ly = y + 4
    anchor, lx = ("end", x - 9) if x > L + pw * 0.6 else ("start", x + 9)
    while any(abs(ly - py_) < 14 and a == anchor and abs(lx - px_) < 220 for px_, py_, a in placed):
        ly += 14
    placed.append((lx, ly, anchor))
    o(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" fill="{color}">{escape(label)}</text>')
o("</svg>")
open(dst, "w").write("\n".join(out) + "\n")
print(f"wrote {dst}", file=sys.stderr)
