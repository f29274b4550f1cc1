"""The fleet's accuracy at a glance: a histogram of each customer's sMAPE ratio against seasonal-naive."""

from __future__ import annotations

import numpy as np

from fleetcast.report.svg_chart import Chart, Layer, render_svg

# Ratios beyond this are gathered in the last bar, so one hopeless customer does not squash the rest.
RATIO_CAP = 3.0
BINS = 30
BEATS_COLOR, LOSES_COLOR = "#2ca02c", "#d62728"


def ratio_histogram_svg(ratios: list[float]) -> str:
    values = np.minimum(np.asarray(ratios, dtype=float), RATIO_CAP)
    edges = np.linspace(0.0, RATIO_CAP, BINS + 1)
    beats, _ = np.histogram(values[values < 1.0], bins=edges)
    loses, _ = np.histogram(values[values >= 1.0], bins=edges)
    chart = Chart(
        title=f"sMAPE ratio against seasonal-naive, {len(values):,} customers",
        layers=[
            Layer(
                "bars", edges, beats.astype(float), BEATS_COLOR, f"beats naive (< 1): {int(beats.sum()):,}"
            ),
            Layer(
                "bars",
                edges,
                loses.astype(float),
                LOSES_COLOR,
                f"naive as good or better: {int(loses.sum()):,}",
            ),
        ],
        x_label=f"holdout sMAPE / seasonal-naive sMAPE (above {RATIO_CAP:g}: in the last bar)",
        y_label="customers",
        marker_x=1.0,
        legend_right=True,
        y_counts=True,
    )
    return render_svg(chart)
