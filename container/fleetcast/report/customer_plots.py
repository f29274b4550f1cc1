"""A worst customer's picture: its history (from the archive), the scored holdout days, the forecast.

The history is the one the model was trained on (Prophet keeps it in model.json); the holdout is its
last `holdout_days`, split as training split it (`training.evaluate.split_holdout`). The forecast is the
forecast dataset's rows for the customer when one is given, else computed from the archive exactly as
the batch job computes it (`forecast.predict`). A customer whose archive is missing or unreadable gets
no picture and the reason instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleetcast.forecast.predict import CustomerFailed, CustomerForecast, forecast_model
from fleetcast.model import archive, manifest
from fleetcast.model.baseline import SeasonalNaive
from fleetcast.report.fleet_stats import Scored
from fleetcast.report.svg_chart import Chart, Layer, render_svg
from fleetcast.training.evaluate import split_holdout
from fleetcast.training.inputs import History

# How much history a picture shows before the holdout: enough to see the weekly pattern and the trend.
HISTORY_DAYS_SHOWN = 120
HISTORY_COLOR, HOLDOUT_COLOR, FORECAST_COLOR = "#555555", "#ff7f0e", "#1f77b4"


@dataclass(frozen=True)
class CustomerPlot:
    scored: Scored
    svg: str | None
    problem: str = ""  # why there is no picture


def find_archive(models: Path, customer: str) -> Path | None:
    """The version the fleet manifest names for `customer`; without a manifest `<models>/<customer>.tar.gz`,
    or the newest such archive anywhere under `models`."""
    listed = models / manifest.MANIFEST_NAME
    if listed.is_file():
        entry = manifest.load(manifest.read_file(listed), {customer}).get(customer)
        return models / entry.target_model if entry else None
    direct = models / archive.archive_name(customer)
    if direct.is_file():
        return direct
    found = [p for p in models.rglob(archive.archive_name(customer)) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def trained_history(model_json: str, metadata: dict) -> History:
    """The rows Prophet kept in model.json (`history`, a pandas orient='table' document); for the
    seasonal-naive kind, the last season it keeps."""
    if archive.model_kind(metadata) == archive.BASELINE_KIND:
        naive = SeasonalNaive.from_json(model_json)
        return History(
            ds=naive.stamps_ns.view("datetime64[ns]"), y=np.asarray(naive.values, dtype=np.float64)
        )
    table = json.loads(json.loads(model_json)["history"])
    rows = table["data"]
    ds = np.array([row["ds"] for row in rows], dtype="datetime64[ns]")
    y = np.array([np.nan if row["y"] is None else row["y"] for row in rows], dtype=np.float64)
    return History(ds=ds, y=y)


def forecast_from_rows(rows: list[dict[str, str]]) -> tuple[np.ndarray, ...]:
    """(ds, yhat, lower, upper) from the dataset's string rows; lower/upper None when empty."""
    rows = sorted(rows, key=lambda row: row["ds"])
    ds = np.array([row["ds"] for row in rows], dtype="datetime64[ns]")
    yhat = np.array([float(row["yhat"]) for row in rows])
    if all(row["yhat_lower"] and row["yhat_upper"] for row in rows):
        return (
            ds,
            yhat,
            np.array([float(r["yhat_lower"]) for r in rows]),
            np.array([float(r["yhat_upper"]) for r in rows]),
        )
    return ds, yhat, None, None


def customer_plot(
    scored: Scored,
    models: Path | None,
    holdout_days: int,
    period: int,
    dataset_rows: list[dict[str, str]] | None = None,
) -> CustomerPlot:
    if models is None:
        return CustomerPlot(scored, None, "no models folder given: the history is in the archive")
    try:
        path = find_archive(models, scored.customer)
        if path is None:
            return CustomerPlot(scored, None, f"no archive for customer {scored.customer} under {models}")
        model_json, metadata = archive.read_archive(path)
        history = trained_history(model_json, metadata)
        if dataset_rows:
            ds, yhat, lower, upper = forecast_from_rows(dataset_rows)
        else:
            computed: CustomerForecast = forecast_model(model_json, metadata, period, path)
            ds, yhat, lower, upper = computed.ds, computed.yhat, computed.yhat_lower, computed.yhat_upper
    except (
        archive.ArtifactError,
        manifest.ManifestError,
        CustomerFailed,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:
        return CustomerPlot(scored, None, f"cannot draw it: {exc}")
    shown_from = history.ds[-1] - np.timedelta64(HISTORY_DAYS_SHOWN, "D")
    holdout_ds = holdout_y = None
    before = history
    if holdout_days:
        split = split_holdout(history, holdout_days)
        before, holdout_ds, holdout_y = split.train, split.holdout.ds, split.holdout.y
    keep = before.ds >= shown_from
    ratio = "inf" if scored.ratio == float("inf") else f"{scored.ratio:.2f}x"
    layers = [Layer("line", before.ds[keep], before.y[keep], HISTORY_COLOR, "history", width=1.1)]
    if holdout_ds is not None and len(holdout_ds):
        layers += [
            Layer("line", holdout_ds, holdout_y, HOLDOUT_COLOR, "holdout (scored)", width=1.6),
            Layer("points", holdout_ds, holdout_y, HOLDOUT_COLOR),
        ]
    if lower is not None and upper is not None:
        layers.append(
            Layer("band", ds, lower, FORECAST_COLOR, "uncertainty interval", y2=upper, opacity=0.22)
        )
    layers.append(Layer("line", ds, yhat, FORECAST_COLOR, "forecast (yhat)", width=2.0))
    chart = Chart(
        title=(
            f"customer {scored.customer} ({scored.model or 'model'}): holdout sMAPE {scored.smape:.1f}% "
            f"vs naive {scored.naive_smape:.1f}% ({ratio})"
        ),
        layers=layers,
        x_is_date=True,
        y_label="consumption",
    )
    return CustomerPlot(scored, render_svg(chart))
