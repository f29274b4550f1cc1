"""`fleetcast report`: a training job's outputs (and optionally the forecast dataset) as one HTML page.

Reads every host's report and summary (`training_output`), computes the fleet's numbers (`fleet_stats`),
draws the histogram and the worst customers' plots, and writes the page atomically, so a reader never
sees half of it. `train` calls `write_report` at the end of every job (its output lands in
output.tar.gz).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from pathlib import Path

from fleetcast.model.archive import write_atomically
from fleetcast.report.customer_plots import customer_plot
from fleetcast.report.fleet_stats import fleet_stats, holdout_days
from fleetcast.report.histogram import ratio_histogram_svg
from fleetcast.report.page import PageInputs, render_page
from fleetcast.report.training_output import ReportInputError, read_training_output

log = logging.getLogger("fleetcast.report")

# The forecast horizon drawn when no forecast dataset is given.
DEFAULT_PERIOD = 14


def _worst_forecast_rows(forecasts: Path, customers: set[str]) -> dict[str, list[dict[str, str]]]:
    from fleetcast.forecast.dataset import read_rows

    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_rows(forecasts, customers):
        rows[row["customer"]].append(row)
    return rows


def write_report(
    train_output: Path,
    out: Path,
    *,
    models: Path | None = None,
    forecasts: Path | None = None,
    period: int = DEFAULT_PERIOD,
    worst_trained_only: bool = False,
) -> Path:
    """Build the page and write it to `out`; ReportInputError when there is nothing to report on."""
    began = time.perf_counter()
    output = read_training_output(train_output)
    stats = fleet_stats(output, worst_trained_only=worst_trained_only)
    worst_customers = {s.customer for s in stats.worst}
    dataset_rows = _worst_forecast_rows(forecasts, worst_customers) if forecasts else {}
    days = holdout_days(output)
    plots = [
        customer_plot(s, models, days, period, dataset_rows.get(s.customer) if forecasts else None)
        for s in stats.worst
    ]
    histogram = ratio_histogram_svg([s.ratio for s in stats.scored]) if stats.scored else None
    page = render_page(
        PageInputs(
            stats=stats,
            histogram_svg=histogram,
            plots=plots,
            source=str(train_output),
            forecasts=str(forecasts) if forecasts else f"computed from the archives ({period} steps)",
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, page.encode("utf-8"), temp_suffix=".html")
    log.info(
        "wrote %s: %d customers, %d worst plotted, %d failures, in %.1f s",
        out,
        stats.customers,
        sum(plot.svg is not None for plot in plots),
        len(stats.failures),
        time.perf_counter() - began,
    )
    return out


def report_main(
    *, train_output: Path, out: Path, models: Path | None, forecasts: Path | None, period: int
) -> int:
    if forecasts is not None and not forecasts.exists():
        log.error("--forecasts %s does not exist", forecasts)
        return 2
    try:
        write_report(train_output, out, models=models, forecasts=forecasts, period=period)
    except ReportInputError as exc:
        log.error("%s", exc)
        return 1
    except ValueError as exc:  # a forecast dataset with other columns
        log.error("cannot read the forecasts: %s", exc)
        return 1
    print(out.resolve())
    return 0
