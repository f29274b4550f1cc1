"""Loading a customer's model for the lean server: the compiled predictor, or Prophet as a loud fallback.

`load_model(model_dir)` loads through `compiled_predictor.load_predictor` (compiled.json, or model.json
compiled without pandas or Prophet; Prophet's own predictor, with a warning, for a model the compiled
form does not cover) and returns a `LoadedModel`: the predictor, a small JSON document from which any
other worker rebuilds the same predictor in microseconds (`from_document`, no file reads), and an
estimate of its size for the memory budget.

Errors at load time are the API's: 404 when the model directory is missing, 400 when it is corrupt.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleetcast.model.compiled import CompiledModel
from fleetcast.serving.compiled_predictor import CompiledPredictor, load_predictor
from fleetcast.serving.protocol import ForecastError, ForecastRequest
from fleetcast.serving.safe_tar import safe_extract

log = logging.getLogger(__name__)

# Python objects around a compiled model's arrays (dicts, dataclasses, array headers): bench/predictor.py
# on the compiled branch and bench/serving_compare.py measure a few KiB per model per worker.
COMPILED_OVERHEAD_BYTES = 8 * 1024
# A typical compiled model's estimate (daily, weekly + yearly seasonality): sizes a worker cache's cap.
COMPILED_COPY_BYTES = 12 * 1024
# A Prophet model in memory (history frames, Stan backend object) is far bigger than its JSON.
PROPHET_BYTES_PER_JSON_BYTE = 12
PROPHET_BASE_BYTES = 2 * 1024 * 1024
WARM_UP_DAYS = 60
METADATA_KEPT = ("customer", "end", "freq", "model_sha256")


class Predictor(Protocol):
    customer: str

    def forecast(self, request: ForecastRequest) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    document: dict[str, Any]  # JSON-able; from_document() rebuilds the predictor from it
    estimate_bytes: int
    compiled: bool


def _compiled_size(model: CompiledModel) -> int:
    arrays = (model.deltas, model.changepoints_t, model.beta)
    return COMPILED_OVERHEAD_BYTES + 3 * sum(int(array.nbytes) for array in arrays)


def load_model(model_dir: Path | str) -> LoadedModel:
    """Load one model directory; ForecastError 404 (missing) or 400 (corrupt) says what is wrong."""
    model_dir = Path(model_dir)
    try:
        predictor = load_predictor(model_dir)
    except ForecastError as exc:
        status = 404 if exc.code == "model_missing" else 400
        message = exc.message if str(model_dir) in exc.message else f"{model_dir}: {exc.message}"
        raise ForecastError(status, exc.code, message) from None
    except Exception as exc:  # a model that breaks the loader is the model's fault: 400, never a 500
        raise ForecastError(
            400, "model_invalid", f"cannot serve the model in {model_dir}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(predictor, CompiledPredictor):
        document = {
            "kind": "compiled",
            "model_dir": str(model_dir),
            "source": predictor.source,
            "metadata": {key: predictor.metadata.get(key) for key in METADATA_KEPT},
            "compiled": predictor.compiled.to_dict(),
        }
        return LoadedModel(predictor, document, _compiled_size(predictor.compiled), compiled=True)
    json_bytes = (model_dir / "model.json").stat().st_size
    estimate = PROPHET_BASE_BYTES + PROPHET_BYTES_PER_JSON_BYTE * json_bytes
    return LoadedModel(predictor, {"kind": "prophet", "model_dir": str(model_dir)}, estimate, compiled=False)


def from_document(document: dict[str, Any]) -> Predictor:
    """Rebuild, in another worker, the predictor that load_model built."""
    if document.get("kind") == "compiled":
        return CompiledPredictor(
            CompiledModel.from_dict(document["compiled"]),
            document["metadata"],
            Path(document["model_dir"]),
            source=document["source"],
        )
    from fleetcast.serving.predictor import ProphetPredictor

    return ProphetPredictor.load(document["model_dir"])


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
        archive = write_archive(work_dir, "warm-up", model_to_json(model), metadata)
        model_dir = work_dir / "model"
        shutil.rmtree(model_dir, ignore_errors=True)
        safe_extract(archive, model_dir)  # no extractall(filter=...): Python 3.11.2 lacks it
        rehearse(model_dir)
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
