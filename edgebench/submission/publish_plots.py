"""Inline SVG charts for the published pages: no plotting library, no network, text that a
browser (and a test) can read. Axes switch to log scale when the values span more than a
decade, since an MCU and a Linux board differ by orders of magnitude."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 34, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    group: str


def _axis(values: list[float], length: float) -> tuple[Callable[[float], float], list[float]]:
    """A value -> pixel offset map over [0, length] and the tick values to draw."""
    low, high = min(values), max(values)
    if low > 0 and high / low > 10:
        lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
        hi = hi if hi > lo else lo + 1
        ticks = [10.0**e for e in range(lo, hi + 1)]
        return (lambda v: (math.log10(v) - lo) / (hi - lo) * length), ticks
    lo = 0.0 if low >= 0 else low
    hi = high if high > lo else lo + 1.0
    step = _nice_step((hi - lo) / 4)
    hi = math.ceil(hi / step) * step
    ticks = [lo + i * step for i in range(round((hi - lo) / step) + 1)]
    return (lambda v: (v - lo) / (hi - lo) * length), ticks


def _nice_step(raw: float) -> float:
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _frame(x_label: str, y_label: str, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">'
        f"<title>{escape(title)}</title>{_caption(title)}"
        + "".join(body)
        + f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate(14,{TOP + (HEIGHT - TOP - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text></svg>'
    )


def scatter(points: list[Point], x_label: str, y_label: str, title: str) -> str:
    """One marker per point, coloured by group, with a legend and a tooltip per marker."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    to_x, x_ticks = _axis([p.x for p in points], plot_w)
    to_y, y_ticks = _axis([p.y for p in points], plot_h)
    body = [_box(plot_w, plot_h)]
    body += _ticks(x_ticks, to_x, y_ticks, to_y, plot_h)
    groups = sorted({p.group for p in points})
    for point in points:
        colour = COLOURS[groups.index(point.group) % len(COLOURS)]
        cx, cy = LEFT + to_x(point.x), TOP + plot_h - to_y(point.y)
        tip = f"{point.label} ({point.group}): {_fmt(point.x)}, {_fmt(point.y)}"
        body.append(
            f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
            f'<text x="{cx + 7:.1f}" y="{cy - 6:.1f}" font-size="10">{escape(point.label)}</text>'
        )
    for i, group in enumerate(groups):
        y = TOP + 12 + 16 * i
        colour = COLOURS[i % len(COLOURS)]
        body.append(
            f'<circle cx="{WIDTH - RIGHT - 120}" cy="{y - 4}" r="4" fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT - 110}" y="{y}" font-size="11">{escape(group)}</text>'
        )
    return _frame(x_label, y_label, body, title)


def bars(items: list[tuple[str, float]], value_label: str, title: str) -> str:
    """Horizontal bars from zero, one per labelled value, in the order given."""
    height = TOP + BOTTOM + 24 * len(items)
    plot_w = WIDTH - 200 - RIGHT
    to_x, ticks = _axis([0.0, *(value for _, value in items)], plot_w)
    body = []
    for i, (label, value) in enumerate(items):
        y = TOP + 24 * i
        width = max(to_x(value), 1.0)
        body.append(
            f'<text x="195" y="{y + 15}" text-anchor="end" font-size="11">{escape(label)}</text>'
            f'<rect class="bar" x="200" y="{y + 3}" width="{width:.1f}" height="16" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text x="{200 + width + 4:.1f}" y="{y + 15}" font-size="11">{_fmt(value)}</text>'
        )
    axis_y = TOP + 24 * len(items) + 4
    for tick in ticks:
        x = 200 + to_x(tick)
        body.append(
            f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10">'
            f"{_fmt(tick)}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}"><title>{escape(title)}</title>'
        + _caption(title)
        + "".join(body)
        + f'<text x="{200 + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{escape(value_label)}</text></svg>"
    )


def _caption(title: str) -> str:
    return f'<text x="{LEFT}" y="16" font-weight="bold" font-size="13">{escape(title)}</text>'


def _box(plot_w: float, plot_h: float) -> str:
    return (
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>'
    )


def _ticks(x_ticks, to_x, y_ticks, to_y, plot_h: float) -> list[str]:
    parts = []
    for tick in x_ticks:
        x = LEFT + to_x(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" font-size="10">'
            f"{_fmt(tick)}</text>"
        )
    for tick in y_ticks:
        y = TOP + plot_h - to_y(tick)
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end" font-size="10">'
            f"{_fmt(tick)}</text>"
        )
    return parts
