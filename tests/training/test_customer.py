"""One customer's training through `train`: the fit engine chosen by `fit_engine`, recorded, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetcast.cli import main
from fleetcast.model import archive, prophet_model
from fleetcast.model.fit import engine
from fleetcast.model.settings import ProphetSettings
from fleetcast.training import evaluate
from fleetcast.training.inputs import History
from tests.helpers import write_folder_layout, write_hyperparameters


def train(root: Path, **hyperparameters: str) -> dict[str, tuple[str, dict]]:
    write_folder_layout(root / "input" / "data" / "train", range(3), rows=120)
    write_hyperparameters(root, workers="1", uncertainty_samples="0", **hyperparameters)
    assert main(["train"]) == 0
    return {p.name: archive.read_archive(p) for p in sorted((root / "checkpoints").glob("*.tar.gz"))}


def history_of(model_json: str) -> History:
    history = prophet_model.model_from_json(model_json).history
    return History(ds=history["ds"].to_numpy(dtype="datetime64[ns]"), y=history["y"].to_numpy(dtype=float))


def test_auto_fits_in_process_and_the_archive_is_stock_prophet(sm_root: Path):
    archives = train(sm_root, fit_engine="auto")
    assert len(archives) == 3
    for model_json, metadata in archives.values():
        assert metadata["fit_engine"] == engine.EXACT
        assert "fit_fallback_reason" not in metadata
        assert metadata["metrics"]["holdout_rows"] == 7
        model = prophet_model.model_from_json(model_json)
        future = pd.date_range(model.history["ds"].max(), periods=8, freq="D")[1:]
        yhat = prophet_model.predict_values(model, future)
        assert np.all(np.isfinite(yhat)) and np.all((yhat > 0) & (yhat < 1500))


def test_stan_reproduces_stock_prophet(sm_root: Path):
    settings = ProphetSettings(uncertainty_samples=0)
    for model_json, metadata in train(sm_root, fit_engine="stan", selection="off").values():
        assert metadata["fit_engine"] == engine.STAN
        frame = history_of(model_json)
        assert model_json == prophet_model.model_to_json(prophet_model.fit_prophet(frame.frame(), settings))
        # The holdout metrics are those of stock fit + stock predict on the training part.
        split = evaluate.split_holdout(frame, 7)
        stock = prophet_model.fit_prophet(split.train.frame(), settings)
        forecast = prophet_model.predict_values(stock, split.holdout.ds)
        naive = evaluate.seasonal_naive(split.train, split.holdout.ds)
        expected = evaluate.holdout_metrics(split.holdout.y, forecast, naive)
        assert metadata["metrics"] == pytest.approx(expected, rel=1e-9)


def test_exact_holdout_metrics_match_stock_predict_on_the_same_fit(sm_root: Path):
    model_json, metadata = train(sm_root, fit_engine="auto", selection="off")["1.tar.gz"]
    frame = history_of(model_json)
    split = evaluate.split_holdout(frame, 7)
    outcome = engine.fit(split.train.frame(), ProphetSettings(uncertainty_samples=0))
    forecast = prophet_model.predict_values(outcome.model, split.holdout.ds)
    naive = evaluate.seasonal_naive(split.train, split.holdout.ds)
    expected = evaluate.holdout_metrics(split.holdout.y, forecast, naive)
    assert metadata["metrics"] == pytest.approx(expected, rel=1e-9)
