"""Small fitted models for the serving tests, built the way the training job builds them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prophet.serialize import model_from_json

from fleetcast.model import archive, baseline, blend, composed, seasonal_change
from fleetcast.model.compiled import NotCompilable, compile_model_json
from fleetcast.model.dates import infer_frequency
from fleetcast.model.prophet_model import fit_prophet, model_to_json
from fleetcast.model.settings import ProphetSettings
from fleetcast.serving.predictor import INTERVAL_SEED
from fleetcast.serving.safe_tar import safe_extract
from tests.helpers import customer_rows


@dataclass(frozen=True)
class BuiltModel:
    customer: str
    archive: Path
    model_dir: Path
    history: pd.DataFrame
    metadata: dict[str, Any]


def daily_history(customer: int, rows: int = 120) -> pd.DataFrame:
    frame = customer_rows(customer, rows=rows)
    return pd.DataFrame({"ds": pd.to_datetime(frame["timestamp"]), "y": frame["consumption"].astype(float)})


def hourly_history(hours: int = 24 * 14, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-03-01", periods=hours, freq="h")
    y = 5 + 2 * np.sin(np.arange(hours) * 2 * np.pi / 24) + rng.normal(0, 0.2, hours)
    return pd.DataFrame({"ds": ds, "y": y})


def extract(archive: Path, model_dir: Path) -> Path:
    """What the multi-model platform does with a TargetModel: extract it to <models>/<name>/model."""
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    safe_extract(archive, model_dir)
    return model_dir


# Wrong-typed model.json fields that JSON accepts and numpy chokes on (by id, for parametrize).
WRONG_TYPED_FIELDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "string-deltas": lambda data: data["params"].__setitem__("delta", [["a", "b"]]),
    "seasonality-props": lambda data: data.__setitem__(
        "seasonalities", [["weekly"], {"weekly": "not an object"}]
    ),
    "params-list": lambda data: data.__setitem__("params", [1, 2]),
}


def wrong_typed_model(source: Path, target: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a model whose model.json has a wrong-typed field, checksum made consistent again."""
    shutil.copytree(source, target)
    data = json.loads((target / "model.json").read_text())
    mutate(data)
    text = json.dumps(data)
    (target / "model.json").write_text(text)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["model_sha256"] = archive.sha256_text(text)
    (target / "metadata.json").write_text(json.dumps(metadata))
    (target / "compiled.json").unlink(missing_ok=True)
    return target


def archive_model(
    directory: Path,
    customer: str,
    history: pd.DataFrame,
    settings: ProphetSettings | None = None,
    weights: blend.Weights | None = None,
    kind: str = archive.PROPHET_KIND,
) -> Path:
    """`<directory>/<customer>.tar.gz` of a stock Prophet fit, with the metadata serving reads and, as
    training ships it, compiled.json (when the compiled form covers the model). With `weights`: a blend
    archive of that Prophet fit, its seasonal part fitted on the same history as training fits it. With the
    seasonal-change kind: Prophet (`part_settings` of `settings`) fitted on the history's week-over-week
    change, and the history's last week."""
    settings = settings or ProphetSettings()
    ds = history["ds"].to_numpy(dtype="datetime64[ns]")
    if kind == archive.CHANGE_KIND:
        settings = seasonal_change.part_settings(settings)
        change_ds, change = seasonal_change.changes(ds, history["y"].to_numpy(dtype=float))
        model = fit_prophet(pd.DataFrame({"ds": change_ds, "y": change}), settings)
    else:
        model = fit_prophet(history, settings)
    model_json = model_to_json(model)
    try:
        compiled = compile_model_json(model_json).to_dict()
    except NotCompilable:
        compiled = None
    metadata = {
        "customer": customer,
        "rows": len(history),
        "start": history["ds"].iloc[0].isoformat(),
        "end": history["ds"].iloc[-1].isoformat(),
        "freq": infer_frequency(history["ds"]),
        "prophet": settings.prophet_kwargs(),
        "regressors": list(settings.regressor_names),
        "metrics": None,
    }
    seasonal_fit = {
        "freq": metadata["freq"],
        "interval_width": settings.interval_width,
        "intervals": settings.uncertainty_samples > 0,
    }
    y = history["y"].to_numpy(dtype=float)
    if kind == archive.CHANGE_KIND:
        seasonal_part = seasonal_change.fit(ds, y, name="weekly-change", **seasonal_fit)
        metadata["model"] = "weekly-change"
    elif weights is not None:
        kind, seasonal_part = archive.BLEND_KIND, blend.fit(ds, y, weights, **seasonal_fit)
        metadata["model"] = "blend"
    else:
        return archive.write_archive(directory, customer, model_json, metadata, compiled=compiled)
    metadata[composed.metadata_key(kind)] = seasonal_part.to_dict()
    return archive.write_archive(directory, customer, model_json, metadata, kind=kind, compiled=compiled)


def archive_baseline(
    directory: Path, customer: str, history: pd.DataFrame, settings: ProphetSettings | None = None
) -> Path:
    """`<directory>/<customer>.tar.gz` of a seasonal-naive model, written as training writes one."""
    settings = settings or ProphetSettings()
    ds = history["ds"].to_numpy(dtype="datetime64[ns]")
    freq = infer_frequency(ds)
    model = baseline.fit(
        ds,
        history["y"].to_numpy(dtype=float),
        freq=freq,
        interval_width=settings.interval_width,
        intervals=settings.uncertainty_samples > 0,
    )
    metadata = {
        "customer": customer,
        "rows": len(history),
        "start": history["ds"].iloc[0].isoformat(),
        "end": history["ds"].iloc[-1].isoformat(),
        "freq": freq,
        "prophet": settings.prophet_kwargs(),
        "model": "naive",
        "metrics": None,
    }
    return archive.write_archive(directory, customer, model.to_json(), metadata, kind=archive.BASELINE_KIND)


def build_model(
    root: Path,
    customer: str,
    history: pd.DataFrame,
    settings: ProphetSettings | None = None,
    *,
    kind: str = archive.PROPHET_KIND,
    weights: blend.Weights | None = None,
) -> BuiltModel:
    if kind == archive.BASELINE_KIND:
        archive_path = archive_baseline(root / "archives", customer, history, settings)
    else:
        archive_path = archive_model(root / "archives", customer, history, settings, weights, kind)
    model_dir = extract(archive_path, root / "models" / f"m-{customer}" / "model")
    return BuiltModel(customer, archive_path, model_dir, history, archive.read_model_dir(model_dir)[1])


def prophet_reference(model_dir: Path, periods: int, freq: str, intervals: bool) -> pd.DataFrame:
    """Prophet's own way: its future frame after the history, its predict (seeded like the server)."""
    model = model_from_json((model_dir / "model.json").read_text())
    future = model.make_future_dataframe(periods=periods, freq=freq, include_history=False)
    if not intervals:
        model.uncertainty_samples = 0
    np.random.seed(INTERVAL_SEED)
    return model.predict(future)


def serving_models(root: Path) -> dict[str, BuiltModel]:
    """daily (with intervals), no_intervals (uncertainty_samples=0), hourly: the models most tests serve;
    naive: a seasonal-naive baseline (with intervals), the model kind a customer ships when no Prophet
    configuration forecasts it better."""
    return {
        "daily": build_model(root, "7", daily_history(7)),
        "no_intervals": build_model(
            root, "8", daily_history(8), replace(ProphetSettings(), uncertainty_samples=0)
        ),
        "hourly": build_model(root, "9", hourly_history()),
        "naive": build_model(root, "10", daily_history(10), kind=archive.BASELINE_KIND),
    }
