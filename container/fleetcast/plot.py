"""`fleetcast plot`: one customer's history and forecast, with its uncertainty interval, as a PNG.

History comes from the model artifact (Prophet keeps its training history in model.json; a
seasonal-naive or seasonal-change model keeps only its last week) or from the data (`--data`: a raw CSV or
a folder of per-customer CSVs). The forecast comes from an endpoint (`--endpoint-url`, through boto3) or is
computed from the model the same way the server does: only the dates after the last observation.
matplotlib is a development dependency, imported here only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from fleetcast.client import InvokeError
from fleetcast.model.archive import (
    BASELINE_KIND,
    CHANGE_KIND,
    COMPOSED_KINDS,
    ArtifactError,
    model_kind,
    read_archive,
)
from fleetcast.model.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


def history_from_data(data: Path, customer: str) -> pd.DataFrame:
    """`ds`, `y` for the customer from a raw CSV (customer_id,timestamp,consumption) or a folder of them."""
    if data.is_dir():
        candidates = [data / f"{customer}.csv", *sorted((data / customer).glob("*.csv"))]
        own = [path for path in candidates if path.is_file()]
        files = own or sorted(data.rglob("*.csv"))
    else:
        files = [data]
    frames = []
    for path in files:
        frame = pd.read_csv(path)
        if "customer_id" in frame.columns:
            frame = frame[frame["customer_id"].astype(str) == customer]
        if frame.empty:
            continue
        frames.append(frame.rename(columns={"timestamp": "ds", "consumption": "y"})[["ds", "y"]])
    if not frames:
        raise LookupError(f"no rows for customer {customer} in {data}")
    history = pd.concat(frames, ignore_index=True)
    history["ds"] = pd.to_datetime(history["ds"])
    return history.sort_values("ds")


def _baseline_model(model_json: str):
    from fleetcast.model.baseline import BaselineError, SeasonalNaive

    try:
        return SeasonalNaive.from_json(model_json)
    except BaselineError as exc:
        raise ArtifactError(f"model.json is not a seasonal-naive model: {exc}") from None


def history_from_model(model_json: str, metadata: dict) -> pd.DataFrame:
    """`ds`, `y` the model itself holds: Prophet's whole training history, the baseline's last week (and a
    seasonal change's: its Prophet part's history is the week-over-week change, not the values)."""
    kind = model_kind(metadata)
    if kind in (BASELINE_KIND, CHANGE_KIND):
        model = _baseline_model(model_json) if kind == BASELINE_KIND else _combiner(metadata).seasonal
        return pd.DataFrame({"ds": model.stamps_ns.view("datetime64[ns]"), "y": model.values})
    from fleetcast.model.prophet_model import model_from_json

    return model_from_json(model_json).history[["ds", "y"]]


def forecast_from_model(
    model_json: str, metadata: dict, period: int, regressors: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    if model_kind(metadata) == BASELINE_KIND:
        from fleetcast.model.compiled import future_dates

        model = _baseline_model(model_json)
        predicted = model.predict(
            future_dates(model.last_observation, period, model.freq), intervals=model.intervals
        )
        columns = {"ds": predicted.ds, "yhat": predicted.yhat}
        if model.intervals:
            columns |= {"yhat_lower": predicted.yhat_lower, "yhat_upper": predicted.yhat_upper}
        return pd.DataFrame(columns)
    from fleetcast.model.conditions import add_condition_columns
    from fleetcast.model.dates import future_frame
    from fleetcast.model.prophet_model import model_from_json

    model = model_from_json(model_json)
    future = future_frame(pd.Timestamp(metadata["end"]), period, str(metadata.get("freq") or "D"))
    for name in model.extra_regressors:
        values = (regressors or {}).get(name)
        if values is None or len(values) != period:
            raise LookupError(
                f"the model needs regressor {name!r} at the {period} forecast steps: give "
                f"--regressor {name}=V1,...,V{period}"
            )
        future[name] = values
    predicted = model.predict(add_condition_columns(future, model.seasonalities))
    # A model trained with uncertainty_samples=0 predicts no interval columns: drawn without a band.
    predicted = predicted[[c for c in ("ds", "yhat", "yhat_lower", "yhat_upper") if c in predicted.columns]]
    if model_kind(metadata) in COMPOSED_KINDS:  # model.json is its Prophet part
        return _combined(predicted, metadata)
    return predicted


def _combiner(metadata: dict):
    from fleetcast.model import composed

    try:
        return composed.from_metadata(metadata)
    except ValueError as exc:
        raise ArtifactError(f"metadata.json: not a {model_kind(metadata)} model: {exc}") from None


def _combined(predicted: pd.DataFrame, metadata: dict) -> pd.DataFrame:
    model = _combiner(metadata)
    bounds = "yhat_lower" in predicted.columns
    combined = model.combine(
        predicted["ds"].to_numpy(dtype="datetime64[ns]"),
        predicted["yhat"].to_numpy(),
        predicted["yhat_lower"].to_numpy() if bounds else None,
        predicted["yhat_upper"].to_numpy() if bounds else None,
    )
    columns = {"ds": predicted["ds"].to_numpy(), "yhat": combined.yhat}
    if bounds:
        columns |= {"yhat_lower": combined.yhat_lower, "yhat_upper": combined.yhat_upper}
    return pd.DataFrame(columns)


def forecast_from_endpoint(
    endpoint_url: str,
    endpoint_name: str,
    customer: str,
    period: int,
    regressors: dict[str, list[float]] | None = None,
    manifest: str | None = None,
) -> pd.DataFrame:
    from fleetcast.client import TargetModels, request_forecast, runtime_client

    client = runtime_client(endpoint_url)
    forecast = request_forecast(
        client, endpoint_name, customer, period, regressors=regressors, targets=TargetModels(manifest)
    )
    frame = pd.DataFrame(forecast.rows)
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def write_plot(history: pd.DataFrame, forecast: pd.DataFrame, customer: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(history["ds"], history["y"], color="0.35", linewidth=1.0, label="history")
    ax.plot(forecast["ds"], forecast["yhat"], color="tab:blue", linewidth=1.8, label="forecast (yhat)")
    if {"yhat_lower", "yhat_upper"} <= set(forecast.columns):
        ax.fill_between(
            forecast["ds"],
            forecast["yhat_lower"],
            forecast["yhat_upper"],
            color="tab:blue",
            alpha=0.2,
            label="uncertainty interval",
        )
    ax.set_title(f"customer {customer}: {len(forecast)}-step forecast")
    ax.set_ylabel("consumption")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(out)
    return out


def _target(manifest: str | None, customer: str) -> str:
    from fleetcast.client import TargetModels

    return TargetModels(manifest)(customer)


def plot_main(
    *,
    models: Path | None,
    data: Path | None,
    customer: str,
    period: int,
    endpoint_url: str | None,
    endpoint_name: str,
    history_days: int,
    out: Path,
    regressors: dict[str, list[float]] | None = None,
) -> int:
    if models is None and data is None:
        log.error("give --models (a folder of <customer>.tar.gz) or --data (the customer's CSVs)")
        return 2
    if models is None and endpoint_url is None:
        log.error("--data gives the history only: add --models or --endpoint-url for the forecast")
        return 2
    # A models folder with a fleet manifest holds versions (<run>/<customer>.tar.gz): the manifest says which.
    manifest = str(models) if models and (models / MANIFEST_NAME).is_file() else None
    try:
        model_json, metadata = read_archive(models / _target(manifest, customer)) if models else (None, None)
        history = (
            history_from_data(data, customer)
            if data is not None
            else history_from_model(model_json, metadata)
        )
        if endpoint_url:
            forecast = forecast_from_endpoint(
                endpoint_url, endpoint_name, customer, period, regressors, manifest
            )
        else:
            forecast = forecast_from_model(model_json, metadata, period, regressors)
    except (ArtifactError, LookupError, OSError, InvokeError) as exc:
        log.error("cannot plot customer %s: %s", customer, exc)
        return 1
    cutoff = history["ds"].max() - pd.Timedelta(days=history_days)
    write_plot(history[history["ds"] >= cutoff], forecast, customer, out)
    log.info(
        "wrote %s (customer %s, %d history points, %d forecast steps)",
        out,
        customer,
        len(history),
        len(forecast),
    )
    return 0
