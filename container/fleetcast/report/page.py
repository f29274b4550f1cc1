"""The report as one self-contained HTML page: inline CSS, SVG images as data URIs, nothing fetched.

Every text that comes from data (customer ids, reasons, model names) is escaped.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from fleetcast.report.customer_plots import CustomerPlot
from fleetcast.report.fleet_stats import FleetStats
from fleetcast.training.customer import FAILED, SKIPPED, TRAINED

# Past this many failures the page lists the first ones and points at the CSV reports for the rest.
FAILURES_LISTED = 500

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px 32px; color: #222; background: #fff; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; font-size: 14px; }
th { background: #f0f3f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.headline td { font-size: 16px; } .good { color: #176d2c; } .bad { color: #a21a1a; }
figure { margin: 12px 0 24px; } figcaption { font-size: 13px; color: #555; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
"""


@dataclass(frozen=True)
class PageInputs:
    stats: FleetStats
    histogram_svg: str | None
    plots: list[CustomerPlot]
    source: str  # where the training output came from
    forecasts: str  # where the forecasts came from
    generated_at: str


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _image(svg: str, alt: str, css_class: str, extra: str = "") -> str:
    """An SVG document as an <img> data URI: self-contained, with the SVG's own natural size."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="{css_class}" alt="{_esc(alt)}" {extra}src="data:image/svg+xml;base64,{encoded}">'


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _headline(stats: FleetStats) -> str:
    ratio = stats.median_ratio
    ratio_class = "good" if ratio is not None and ratio < 1 else "bad"
    rows = [
        ("customers", f"{stats.customers:,}"),
        ("trained", f"{stats.counts.get(TRAINED, 0):,}"),
        ("skipped (unchanged, resumed)", f"{stats.counts.get(SKIPPED, 0):,}"),
        ("failed", f"{stats.counts.get(FAILED, 0):,}"),
        ("hosts", f"{stats.hosts}"),
        ("models/s (all hosts)", _num(stats.models_per_second, ",.1f")),
        (
            "training time (slowest host)",
            "n/a" if stats.elapsed_seconds is None else f"{stats.elapsed_seconds:.1f} s",
        ),
        ("customers scored on the holdout", f"{len(stats.scored):,}"),
        ("median holdout sMAPE", _num(stats.median_smape, ".2f") + " %"),
        ("median seasonal-naive sMAPE", _num(stats.median_naive_smape, ".2f") + " %"),
        ("median sMAPE vs naive", f'<span class="{ratio_class}">{_num(ratio, ".2f")}x</span>'),
        ("share of customers beating naive", _pct(stats.beats_naive_share)),
    ]
    body = "".join(f'<tr><th>{_esc(label)}</th><td class="num">{value}</td></tr>' for label, value in rows)
    return f'<table class="headline" id="headline">{body}</table>'


def _worst(plots: list[CustomerPlot]) -> str:
    if not plots:
        return "<p>No customer was scored on a holdout (holdout_days=0, or every customer failed).</p>"
    head = (
        "<tr><th>#</th><th>customer</th><th>model</th><th>sMAPE</th><th>naive sMAPE</th><th>ratio</th></tr>"
    )
    rows = []
    figures = []
    for rank, plot in enumerate(plots, 1):
        s = plot.scored
        ratio = "inf" if s.ratio == float("inf") else f"{s.ratio:.2f}x"
        rows.append(
            f'<tr><td class="num">{rank}</td><td><a href="#customer-{rank}">{_esc(s.customer)}</a></td>'
            f'<td>{_esc(s.model)}</td><td class="num">{s.smape:.2f} %</td>'
            f'<td class="num">{s.naive_smape:.2f} %</td><td class="num">{ratio}</td></tr>'
        )
        if plot.svg is not None:
            image = _image(
                plot.svg,
                f"forecast of customer {s.customer}",
                "customer-plot",
                f'data-customer="{_esc(s.customer)}" ',
            )
        else:
            image = f'<p class="bad">{_esc(plot.problem)}</p>'
        figures.append(
            f'<figure id="customer-{rank}">{image}<figcaption>#{rank}: customer {_esc(s.customer)}'
            "</figcaption></figure>"
        )
    return f"<table>{head}{''.join(rows)}</table>{''.join(figures)}"


def _failures(stats: FleetStats) -> str:
    if not stats.failures:
        return "<p>No customer failed.</p>"
    shown = stats.failures[:FAILURES_LISTED]
    rows = "".join(f"<tr><td>{_esc(c)}</td><td>{_esc(reason)}</td></tr>" for c, reason in shown)
    more = len(stats.failures) - len(shown)
    note = f"<p>{more:,} more in the per-host CSV reports.</p>" if more > 0 else ""
    return f'<table id="failures"><tr><th>customer</th><th>reason</th></tr>{rows}</table>{note}'


def render_page(inputs: PageInputs) -> str:
    stats = inputs.stats
    histogram = (
        _image(inputs.histogram_svg, "histogram of sMAPE ratio against seasonal-naive", "histogram")
        if inputs.histogram_svg
        else "<p>No customer was scored on a holdout.</p>"
    )
    among = ", among the customers this run trained (kept ones are on their own run's page)"
    among = among if stats.worst_trained_only else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fleetcast fleet report</title>
<style>{STYLE}</style></head>
<body>
<h1>fleetcast fleet report</h1>
<p class="sub">Training output: {_esc(inputs.source)} &middot; forecasts: {_esc(inputs.forecasts)}
&middot; generated {_esc(inputs.generated_at)}</p>
<h2>Headline</h2>
{_headline(stats)}
<h2>Accuracy against seasonal-naive</h2>
<p>Each customer's holdout sMAPE divided by seasonal-naive's on the same days (the value a whole number of
weeks earlier). Below 1 the model beats naive.</p>
<figure>{histogram}</figure>
<h2>The {len(inputs.plots)} worst customers</h2>
<p>Highest sMAPE ratio against naive first: where the model loses most to the baseline{among}. Each plot shows
the history, the holdout days that were scored, the forecast after the last observation and its interval.</p>
{_worst(inputs.plots)}
<h2>Failures ({len(stats.failures):,})</h2>
{_failures(stats)}
</body></html>
"""
