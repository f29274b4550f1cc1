"""Small SVG charts drawn directly: lines, bands, markers and bars on linear axes, dates or numbers.

The report draws a histogram and ten forecast plots at the end of every training job, so the drawing
must cost milliseconds, not the second or two matplotlib takes to import and render (which `train`'s
throughput would pay). The output is a standalone SVG document with its own width and height, embedded
as an `<img>` data URI: the page stays self-contained and each image has a natural size.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np

WIDTH, HEIGHT = 880, 330
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 34, 46
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'
DAY_NS = 86_400 * 10**9
LEGEND_WIDTH = 230


@dataclass(frozen=True)
class Layer:
    """One thing drawn: `line` (x, y), `band` (x, y low, y2 high), `points` (x, y) or `bars` (x: the
    edges, y: the heights)."""

    kind: str
    x: np.ndarray
    y: np.ndarray
    color: str
    label: str = ""
    y2: np.ndarray | None = None
    opacity: float = 1.0
    width: float = 1.5


@dataclass
class Chart:
    title: str
    layers: list[Layer] = field(default_factory=list)
    x_is_date: bool = False
    x_label: str = ""
    y_label: str = ""
    marker_x: float | None = None  # a dashed vertical line (e.g. ratio 1 on the histogram)
    legend_right: bool = False  # the legend in the top right corner instead of the top left
    y_counts: bool = False  # the y values are counts: ticks at whole numbers only (no "0.5 customers")


def nice_step(span: float, ticks: int = 6) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about `ticks` ticks over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _element(name: str, text: str | None = None, **attributes: object) -> str:
    """An SVG element; attribute names are written with dashes (`stroke_width` -> `stroke-width`)."""
    spelled = " ".join(f'{key.rstrip("_").replace("_", "-")}="{value}"' for key, value in attributes.items())
    if text is None:
        return f"<{name} {spelled}/>"
    return f"<{name} {spelled} {FONT}>{html.escape(text)}</{name}>"


def _as_x(values: np.ndarray, is_date: bool) -> np.ndarray:
    if is_date:
        return np.asarray(values, dtype="datetime64[ns]").view(np.int64).astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def _date_ticks(low: float, high: float) -> list[tuple[float, str]]:
    days = (high - low) / DAY_NS
    step_days = next((s for s in (1, 2, 7, 14, 30, 61, 91, 182, 365) if days / s <= 8), 730)
    first = math.ceil(low / (step_days * DAY_NS)) * step_days * DAY_NS
    ticks = []
    value = first
    while value <= high:
        label = str(np.datetime64(int(value), "ns").astype("datetime64[D]"))
        ticks.append((value, label))
        value += step_days * DAY_NS
    return ticks


def _number_ticks(low: float, high: float, min_step: float = 0.0) -> list[tuple[float, str]]:
    step = max(nice_step(high - low), min_step)
    first = math.ceil(low / step) * step
    count = math.floor((high - first) / step + 1e-9) + 1
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return [(first + i * step, f"{first + i * step:,.{decimals}f}") for i in range(max(count, 0))]


def _bounds(chart: Chart) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for layer in chart.layers:
        x = _as_x(layer.x, chart.x_is_date)
        xs += [np.nanmin(x), np.nanmax(x)] if len(x) else []
        for values in (layer.y, layer.y2):
            if values is not None and len(values) and np.isfinite(values).any():
                ys += [float(np.nanmin(values)), float(np.nanmax(values))]
    if chart.marker_x is not None:
        xs.append(chart.marker_x)
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if any(layer.kind == "bars" for layer in chart.layers):
        y_low = min(y_low, 0.0)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    pad = (y_high - y_low) * 0.06 or 1.0
    return x_low, x_high, y_low - (0 if y_low == 0 else pad), y_high + pad


def render_svg(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> str:
    x_low, x_high, y_low, y_high = _bounds(chart)
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM

    def sx(values: np.ndarray | float) -> np.ndarray:
        return MARGIN_LEFT + (np.asarray(values, dtype=np.float64) - x_low) / (x_high - x_low) * plot_w

    def sy(values: np.ndarray | float) -> np.ndarray:
        return MARGIN_TOP + (y_high - np.asarray(values, dtype=np.float64)) / (y_high - y_low) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _element("text", chart.title, x=f"{width / 2:.0f}", y=20, text_anchor="middle", font_size=14),
    ]
    x_ticks = _date_ticks(x_low, x_high) if chart.x_is_date else _number_ticks(x_low, x_high)
    right, bottom = width - MARGIN_RIGHT, height - MARGIN_BOTTOM
    for value, label in _number_ticks(y_low, y_high, min_step=1.0 if chart.y_counts else 0.0):
        y = f"{float(sy(value)):.1f}"
        parts.append(_element("line", x1=MARGIN_LEFT, x2=right, y1=y, y2=y, stroke="#e3e3e3"))
        parts.append(
            _element(
                "text", label, x=MARGIN_LEFT - 6, y=f"{float(y) + 4:.1f}", text_anchor="end", font_size=11
            )
        )
    for value, label in x_ticks:
        x = f"{float(sx(value)):.1f}"
        parts.append(_element("line", x1=x, x2=x, y1=MARGIN_TOP, y2=bottom, stroke="#eeeeee"))
        parts.append(_element("text", label, x=x, y=bottom + 16, text_anchor="middle", font_size=11))
    for layer in chart.layers:
        parts.append(_layer_svg(layer, chart.x_is_date, sx, sy))
    if chart.marker_x is not None:
        x = float(sx(chart.marker_x))
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP}" y2="{height - MARGIN_BOTTOM}" stroke="#333" '
            'stroke-dasharray="5,4" stroke-width="1.2"/>'
        )
    parts.append(
        _element("rect", x=MARGIN_LEFT, y=MARGIN_TOP, width=plot_w, height=plot_h, fill="none", stroke="#888")
    )
    if chart.x_label:
        parts.append(
            f'<text x="{MARGIN_LEFT + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle" font-size="12" '
            f"{FONT}>{html.escape(chart.x_label)}</text>"
        )
    if chart.y_label:
        parts.append(
            f'<text transform="translate(14,{MARGIN_TOP + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
            f'font-size="12" {FONT}>{html.escape(chart.y_label)}</text>'
        )
    legend_x = width - MARGIN_RIGHT - LEGEND_WIDTH - 4 if chart.legend_right else MARGIN_LEFT + 4
    parts.append(_legend([layer for layer in chart.layers if layer.label], legend_x))
    parts.append("</svg>")
    return "".join(parts)


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    keep = np.isfinite(xs) & np.isfinite(ys)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs[keep].tolist(), ys[keep].tolist(), strict=True))


def _layer_svg(layer: Layer, x_is_date: bool, sx, sy) -> str:
    x = sx(_as_x(layer.x, x_is_date))
    if layer.kind == "line":
        return (
            f'<polyline fill="none" stroke="{layer.color}" stroke-width="{layer.width}" '
            f'stroke-opacity="{layer.opacity}" points="{_points(x, sy(layer.y))}"/>'
        )
    if layer.kind == "band":
        assert layer.y2 is not None
        outline = _points(np.concatenate([x, x[::-1]]), np.concatenate([sy(layer.y), sy(layer.y2)[::-1]]))
        return (
            f'<polygon fill="{layer.color}" fill-opacity="{layer.opacity}" stroke="none" points="{outline}"/>'
        )
    if layer.kind == "points":
        ys = sy(layer.y)
        return "".join(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.6" fill="{layer.color}"/>'
            for cx, cy in zip(x.tolist(), ys.tolist(), strict=True)
            if math.isfinite(cy)
        )
    if layer.kind == "bars":  # x holds len(y) + 1 edges
        base = float(sy(0.0))
        bars = []
        for left, right, top in zip(x[:-1].tolist(), x[1:].tolist(), sy(layer.y).tolist(), strict=True):
            if top < base:
                bars.append(
                    f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left - 1, 0.5):.1f}" '
                    f'height="{base - top:.1f}" fill="{layer.color}" fill-opacity="{layer.opacity}"/>'
                )
        return "".join(bars)
    raise ValueError(f"unknown layer kind {layer.kind!r}")


def _legend(layers: list[Layer], left: float) -> str:
    parts = []
    for index, layer in enumerate(layers):
        y = MARGIN_TOP + 14 + index * 16
        x = left + 6
        if layer.kind == "line":
            swatch = _element("line", x1=x, x2=x + 18, y1=y - 4, y2=y - 4, stroke=layer.color, stroke_width=2)
        else:
            swatch = (
                f'<rect x="{x}" y="{y - 9}" width="18" height="9" fill="{layer.color}" '
                f'fill-opacity="{max(layer.opacity, 0.35)}"/>'
            )
        parts.append(
            swatch + f'<text x="{x + 24}" y="{y}" font-size="11" {FONT}>{html.escape(layer.label)}</text>'
        )
    if not parts:
        return ""
    height = 16 * len(layers) + 6
    return (
        f'<rect x="{left}" y="{MARGIN_TOP + 2}" width="{LEGEND_WIDTH}" height="{height}" fill="#ffffff" '
        f'fill-opacity="0.85" stroke="#cccccc"/>' + "".join(parts)
    )
