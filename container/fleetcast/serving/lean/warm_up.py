"""The lean server's warm-up: one tiny model fitted, archived, extracted and served before the fork."""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from fleetcast.serving.predictors import from_document, load_model
from fleetcast.serving.protocol import ForecastRequest
from fleetcast.serving.safe_tar import safe_extract

log = logging.getLogger(__name__)
WARM_UP_DAYS = 60


def warm_up(work_dir: Path) -> Path | None:
    """Fit a tiny model into `work_dir` and run the whole load and forecast path on it once.

    Run in the parent before workers fork, everything the path initialises lazily (Prophet's Stan
    backend, ~1 s; pandas and numpy code paths and caches) lives in memory the workers share, instead of
    costing the first unlucky customer a slow cold start. Returns the model directory, for `rehearse` in
    each worker; None (and a warning) if it failed: the server then still starts, only colder.
    """
    from fleetcast.logs import quiet_third_party

    quiet_third_party()
    began = time.perf_counter()
    try:
        import pandas as pd

        from fleetcast.model.archive import write_archive
        from fleetcast.model.compiled import compile_model_json
        from fleetcast.model.prophet_model import model_to_json

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from prophet import Prophet

            quiet_third_party()
            days = pd.date_range("2022-01-01", periods=WARM_UP_DAYS, freq="D")
            history = pd.DataFrame({"ds": days, "y": np.sin(np.arange(WARM_UP_DAYS) / 3.0) + 10.0})
            model = Prophet(uncertainty_samples=50).fit(history)
        metadata = {"customer": "warm-up", "end": days[-1].isoformat(), "freq": "D"}
        work_dir.mkdir(parents=True, exist_ok=True)
        model_json = model_to_json(model)
        # Shipped with compiled.json, as training writes archives: the path real loads take.
        compiled = compile_model_json(model_json).to_dict()
        archive = write_archive(work_dir, "warm-up", model_json, metadata, compiled=compiled)
        model_dir = work_dir / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        safe_extract(archive, model_dir)  # no extractall(filter=...): Python 3.11.2 lacks it
        rehearse(model_dir)
        from fleetcast.model import country_holidays

        country_holidays.warm_up()  # a holiday model's first forecast would import the calendars
    except Exception as exc:  # a server that starts colder beats one that does not start
        log.warning("warm-up failed (%s: %s); the first model load will be slower", type(exc).__name__, exc)
        return None
    log.info("warmed up the load and forecast path in %.2f s", time.perf_counter() - began)
    return model_dir


def rehearse(model_dir: Path) -> None:
    """Load, rebuild and forecast one model: pages in (per process) the code every real request runs."""
    loaded = load_model(model_dir)
    for request in (ForecastRequest(period=7), ForecastRequest(period=3, intervals=False)):
        loaded.predictor.forecast(request)
        from_document(json.loads(json.dumps(loaded.document))).forecast(request)
