"""Loading a customer's model for the lean server: the compiled predictor, or Prophet as a loud fallback.

`load_model(model_dir)` reads and verifies `model.json` + `metadata.json`, compiles the Prophet model to
its numeric form and returns a `LoadedModel`: the predictor plus a JSON document from which any other
worker rebuilds the same predictor in microseconds (`from_document`), and an estimate of its size for the
memory budget. A model the compiled predictor does not reproduce exactly is served by Prophet's own
predict (ProphetPredictor), with a warning in the log; its document then only says where to load it from.
"""

from __future__ import annotations

import json
import logging
import tarfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleetcast.forecasting.compiled import (
    COMPILED_FILE,
    CompiledModel,
    NotCompilable,
    compile_model,
    future_dates,
)
from fleetcast.serving.protocol import ForecastError, ForecastRequest, bad_request
from fleetcast.training.artifact import ArtifactError, read_model_dir

log = logging.getLogger(__name__)

# Same per-request seed as the Prophet-backed predictor: the same request always gets the same answer.
INTERVAL_SEED = 0
# Python objects around a compiled model's arrays (dicts, dataclasses, array headers), measured with
# RSS growth over 1,000 loaded models in one worker (bench/serving_compare.py prints the real figure).
COMPILED_OVERHEAD_BYTES = 8 * 1024
# A Prophet model in memory (history frames, Stan backend object) is far bigger than its JSON.
PROPHET_BYTES_PER_JSON_BYTE = 12
PROPHET_BASE_BYTES = 2 * 1024 * 1024
NS_PER_SECOND = 1_000_000_000
WARM_UP_DAYS = 60


class Predictor(Protocol):
    customer: str

    def forecast(self, request: ForecastRequest) -> dict[str, Any]: ...


class CompiledPredictor:
    """Answers ForecastRequests from a CompiledModel: numpy only, no pandas on fixed-step frequencies."""

    def __init__(self, model: CompiledModel, customer: str, freq: str, last_observation: str) -> None:
        self.model = model
        self.customer = customer
        self.freq = freq
        self.last_observation = last_observation
        self._last_ns = np.datetime64(last_observation, "ns")

    @property
    def has_intervals(self) -> bool:
        return self.model.uncertainty_samples > 0

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        intervals = self.has_intervals if request.intervals is None else request.intervals
        if intervals and not self.has_intervals:
            raise bad_request(
                "intervals_unavailable",
                f"the model for customer {self.customer} was trained with uncertainty_samples=0, so it has "
                'no intervals; send "intervals": false',
            )
        freq = request.freq or self.freq
        dates = self._dates(request.period, freq)
        result = self.model.predict(dates, intervals=intervals, seed=INTERVAL_SEED)
        ds_ns = result.ds.view(np.int64)
        unit = "s" if not np.any(ds_ns % NS_PER_SECOND) else "us"
        ds = np.datetime_as_string(result.ds, unit=unit).tolist()
        yhat = result.yhat.tolist()
        if intervals:
            lower, upper = result.yhat_lower.tolist(), result.yhat_upper.tolist()
            rows = [
                {"ds": ds[i], "yhat": yhat[i], "yhat_lower": lower[i], "yhat_upper": upper[i]}
                for i in range(len(ds))
            ]
        else:
            rows = [{"ds": ds[i], "yhat": yhat[i]} for i in range(len(ds))]
        return {"customer": self.customer, "forecast": rows}

    def _dates(self, period: int, freq: str) -> np.ndarray:
        overflow = bad_request(
            "bad_period", f"{period} steps of {freq!r} after {self.last_observation} run past year 2262"
        )
        try:
            dates = future_dates(self._last_ns, period, freq)
        except (OverflowError, ValueError) as exc:
            if "frequency" in str(exc):
                raise bad_request("bad_freq", str(exc)) from None
            raise overflow from None
        except Exception as exc:  # pandas' OutOfBoundsDatetime for calendar frequencies
            if type(exc).__name__ == "OutOfBoundsDatetime":
                raise overflow from None
            raise
        stamps = dates.view(np.int64)
        # Fixed-step grids are integer arithmetic: past 2262 they wrap around instead of raising.
        if len(stamps) and (stamps[0] <= self._last_ns.view(np.int64) or np.any(np.diff(stamps) <= 0)):
            raise overflow
        if len(dates) != period:
            raise bad_request("bad_freq", f"freq {freq!r} does not give {period} dates after the history")
        return dates


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    document: dict[str, Any]  # JSON-able; from_document() rebuilds the predictor from it
    estimate_bytes: int
    compiled: bool


def _model_error(model_dir: Path, code: str, problem: str) -> ForecastError:
    status = 404 if code == "model_missing" else 400
    return ForecastError(status, code, f"cannot load the model in {model_dir}: {problem}")


def _check_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    missing = [key for key in ("customer", "end", "freq") if not metadata.get(key)]
    if missing:
        raise _model_error(model_dir, "model_invalid", f"metadata.json lacks {', '.join(missing)}")
    try:
        np.datetime64(str(metadata["end"]).replace(" ", "T"), "ns")
    except ValueError:
        raise _model_error(
            model_dir, "model_invalid", f"metadata.json end {metadata['end']!r} is not a timestamp"
        ) from None


def _compiled_size(model: CompiledModel) -> int:
    arrays = (model.deltas, model.changepoints_t, model.beta)
    return COMPILED_OVERHEAD_BYTES + sum(int(array.nbytes) for array in arrays) * 3


def _compiled_loaded(model: CompiledModel, metadata: dict[str, Any]) -> LoadedModel:
    customer, freq = str(metadata["customer"]), str(metadata["freq"])
    end = str(metadata["end"]).replace(" ", "T")
    predictor = CompiledPredictor(model, customer, freq, end)
    document = {
        "kind": "compiled",
        "customer": customer,
        "freq": freq,
        "end": end,
        "compiled": model.to_dict(),
    }
    return LoadedModel(predictor, document, _compiled_size(model), compiled=True)


def load_model(model_dir: Path | str) -> LoadedModel:
    """Load one model directory; ForecastError 404 (missing) or 400 (corrupt) says what is wrong."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise _model_error(model_dir, "model_missing", "the directory does not exist")
    try:
        model_json, metadata = read_model_dir(model_dir)
    except ArtifactError as exc:
        raise ForecastError(400, "model_invalid", f"cannot load the model in {model_dir}: {exc}") from None
    _check_metadata(model_dir, metadata)

    compiled_file = model_dir / COMPILED_FILE
    if compiled_file.is_file():
        # Compiled at training time: no Prophet needed at all.
        try:
            return _compiled_loaded(CompiledModel.from_dict(json.loads(compiled_file.read_text())), metadata)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring %s (%s); compiling model.json instead", compiled_file, exc)

    from fleetcast.forecasting.prophet_model import model_from_json

    try:
        prophet_model = model_from_json(model_json)
    except Exception as exc:  # Prophet raises bare ValueError/KeyError/TypeError for bad JSON
        raise _model_error(
            model_dir, "model_invalid", f"model.json is not a Prophet model ({type(exc).__name__}: {exc})"
        ) from None
    if prophet_model.history is None:
        raise _model_error(model_dir, "model_invalid", "model.json holds an unfitted Prophet model")
    try:
        return _compiled_loaded(compile_model(prophet_model), metadata)
    except NotCompilable as exc:
        log.warning(
            "model in %s (customer %s) is not compilable (%s): serving it with Prophet's own predict, "
            "which is ~100x slower and ~100x bigger in memory",
            model_dir,
            metadata.get("customer"),
            exc.reason,
        )
    return _prophet_loaded(model_dir, len(model_json))


def _prophet_loaded(model_dir: Path, json_bytes: int) -> LoadedModel:
    from fleetcast.serving.predictor import ProphetPredictor

    try:
        predictor = ProphetPredictor.load(model_dir)
    except ForecastError as exc:
        raise _model_error(model_dir, exc.code, exc.message) from None
    estimate = PROPHET_BASE_BYTES + PROPHET_BYTES_PER_JSON_BYTE * json_bytes
    return LoadedModel(predictor, {"kind": "prophet", "model_dir": str(model_dir)}, estimate, compiled=False)


def from_document(document: dict[str, Any]) -> Predictor:
    """Rebuild, in another worker, the predictor that load_model built."""
    if document.get("kind") == "compiled":
        model = CompiledModel.from_dict(document["compiled"])
        return CompiledPredictor(model, document["customer"], document["freq"], document["end"])
    return _prophet_loaded(Path(document["model_dir"]), 0).predictor


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

        from fleetcast.forecasting.prophet_model import model_to_json
        from fleetcast.training.artifact import write_archive

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
        model_dir.mkdir(exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
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
