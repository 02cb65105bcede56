"""Small hand-written SVG charts for the HTML report: line (or bar) charts with a linear or
log10 x axis and a linear y axis from zero. Inline SVG needs no library and no network, stays
crisp at any zoom and is a few KB. Every text that comes from data is escaped."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 720, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 40, 40, 52  # margins; RIGHT fits a centred '99.999%' tick


@dataclass
class Series:
    name: str  # legend text
    role: str  # CSS class: "current" or "baseline"
    points: list[tuple[float, float]]
    # When set, the raw y values are listed in this data attribute too (machine readable).
    values_attr: str | None = None


@dataclass
class Marker:
    x: float
    y: float
    label: str  # shown on hover (SVG <title>) and next to the dot


@dataclass
class Chart:
    chart_id: str
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    x_range: tuple[float, float]
    x_log: bool = False
    x_ticks: list[tuple[float, str]] | None = None  # default: nice linear ticks
    y_divisor: float = 1.0  # tick labels show y / y_divisor
    bars: bool = False
    markers: list[Marker] = field(default_factory=list)
    # Spans of x shaded behind the data, each (from, to, label): the windows of --phase/--fault.
    shades: list[tuple[float, float, str]] = field(default_factory=list)


def nice_step(span: float, target_ticks: int = 5) -> float:
    """1, 2 or 5 times a power of ten, giving about target_ticks intervals over span."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def nice_ticks(top: float, target_ticks: int = 5) -> list[float]:
    """Ticks from 0 to the first multiple of a nice step at or above top."""
    step = nice_step(top, target_ticks)
    n = max(1, math.ceil(top / step - 1e-9))
    return [i * step for i in range(n + 1)]


def fmt_tick(v: float) -> str:
    return f"{v:.6g}" if v != int(v) else f"{int(v):d}"


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def render(c: Chart) -> str:
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = HEIGHT - BOTTOM, TOP  # pixel y of the bottom and top of the plot area
    lo, hi = c.x_range
    if c.x_log:
        llo, lhi = math.log10(lo), math.log10(hi)

        def px(x: float) -> float:
            return x0 + (math.log10(max(x, lo)) - llo) / ((lhi - llo) or 1) * (x1 - x0)
    else:
        def px(x: float) -> float:
            return x0 + (x - lo) / ((hi - lo) or 1) * (x1 - x0)

    ymax = max((y for s in c.series for _, y in s.points), default=0.0) / c.y_divisor
    yticks = nice_ticks(ymax * 1.05 if ymax > 0 else 1.0)
    ytop = yticks[-1]

    def py(y: float) -> float:
        return y0 - (y / c.y_divisor) / ytop * (y0 - y1)

    out = [f'<svg id="{escape(c.chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(c.title)}">',
           f"<title>{escape(c.title)}</title>",
           f'<text class="chart-title" x="{x0}" y="22">{escape(c.title)}</text>']
    # Grid and tick labels.
    for t in yticks:
        y = _num(py(t * c.y_divisor))
        out.append(f'<line class="grid" x1="{x0}" y1="{y}" x2="{x1}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{x0 - 6}" y="{y}" text-anchor="end" '
                   f'dominant-baseline="middle">{escape(fmt_tick(t))}</text>')
    xticks = c.x_ticks if c.x_ticks is not None else [
        (t, fmt_tick(t)) for t in nice_ticks(hi - lo, 8) if t <= hi - lo + 1e-9]
    for t, label in xticks:
        if c.x_ticks is None:
            t += lo
        x = _num(px(t))
        out.append(f'<line class="grid" x1="{x}" y1="{y1}" x2="{x}" y2="{y0}"/>')
        out.append(f'<text class="tick" x="{x}" y="{y0 + 16}" text-anchor="middle">{escape(label)}</text>')
    for a, b, label in c.shades:
        left, right = max(px(a), x0), min(px(b), x1)
        if right > left:
            out.append(f'<rect class="window" x="{_num(left)}" y="{y1}" width="{_num(right - left)}" '
                       f'height="{y0 - y1}"><title>{escape(label)}</title></rect>')
            out.append(f'<text class="window-label" x="{_num(left + 3)}" y="{y1 + 12}">{escape(label)}</text>')
    out.append(f'<rect class="frame" x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}"/>')
    out.append(f'<text class="axis-label" x="{(x0 + x1) / 2}" y="{HEIGHT - 10}" '
               f'text-anchor="middle">{escape(c.x_label)}</text>')
    out.append(f'<text class="axis-label" transform="translate(16 {(y0 + y1) / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(c.y_label)}</text>')
    if c.bars:
        out += _bars(c.series, px, py, y0, hi - lo)
    else:
        out += _lines(c.series, px, py)
    for m in c.markers:
        x, y = _num(px(m.x)), _num(py(m.y))
        out.append(f'<g class="marker"><circle cx="{x}" cy="{y}" r="3.5"><title>{escape(m.label)}'
                   f'</title></circle><text x="{x}" y="{_num(py(m.y) - 8)}" '
                   f'text-anchor="end">{escape(m.label.split(" ")[0])}</text></g>')
    out += _legend(c.series, x1, 22)
    out.append("</svg>")
    return "\n".join(out)


def _lines(series: Sequence[Series], px: Callable[[float], float],
           py: Callable[[float], float]) -> list[str]:
    out = []
    for s in series:
        if not s.points:
            continue
        pts = " ".join(f"{_num(px(x))},{_num(py(y))}" for x, y in s.points)
        data = ""
        if s.values_attr:
            # repr: the exact values, not the rounded pixels.
            data = f' {s.values_attr}="' + " ".join(repr(float(y)) for _, y in s.points) + '"'
        out.append(f'<polyline class="series {escape(s.role)}" points="{pts}"{data}>'
                   f"<title>{escape(s.name)}</title></polyline>")
    return out


def _bars(series: Sequence[Series], px: Callable[[float], float], py: Callable[[float], float],
          y0: float, span: float) -> list[str]:
    """One bar per point and series, side by side around the point's x."""
    out = []
    n = max(len(series), 1)
    slot = (WIDTH - LEFT - RIGHT) / max(span, 1) * 0.7  # px available per x unit
    w = max(min(slot / n, 24.0), 1.0)
    for k, s in enumerate(series):
        for x, y in s.points:
            if y <= 0:
                continue
            left = px(x) - w * n / 2 + k * w
            top = py(y)
            out.append(f'<rect class="bar {escape(s.role)}" x="{_num(left)}" y="{_num(top)}" '
                       f'width="{_num(w)}" height="{_num(y0 - top)}"><title>{escape(s.name)} '
                       f"t={fmt_tick(x)}s: {fmt_tick(y)}</title></rect>")
    return out


def _legend(series: Sequence[Series], right: float, y: float) -> list[str]:
    """One row in the title line, ending at the plot's right edge (inside the plot it would
    hide data: flat rps lines run along the top, the distribution along the left)."""
    widths = [34 + 6.5 * len(s.name) for s in series]  # line + gap + text at ~6.5 px a char
    x = right - sum(widths)
    out = []
    for s, w in zip(series, widths, strict=True):
        out.append(f'<g class="legend {escape(s.role)}"><line class="series {escape(s.role)}" '
                   f'x1="{_num(x)}" y1="{y - 4}" x2="{_num(x + 22)}" y2="{y - 4}"/><text '
                   f'x="{_num(x + 27)}" y="{y}">{escape(s.name)}</text></g>')
        x += w
    return out
