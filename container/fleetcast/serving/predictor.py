"""One customer's forecaster as a server sees it: `load(model_dir)` once, then `forecast(request)`.

It predicts only the requested future dates (after the model's last observation), never the whole
history. Any server can hold any predictor with this interface, so a faster predictor can replace this
Prophet-backed one without touching the protocol or the servers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fleetcast.model.archive import ArtifactError, read_model_dir
from fleetcast.model.conditions import add_condition_columns
from fleetcast.model.dates import future_frame
from fleetcast.model.prophet_model import model_from_json
from fleetcast.serving.errors import ModelInvalidError, ModelMissingError, invalid_model
from fleetcast.serving.protocol import (
    ForecastRequest,
    bad_request,
    check_regressors,
    resolve_intervals,
)

if TYPE_CHECKING:
    from prophet import Prophet

log = logging.getLogger(__name__)

# Prophet draws its interval samples from numpy's global generator; seeding it per request makes the
# same request give the same answer (cacheable, testable) at no cost.
INTERVAL_SEED = 0
# That generator is process-wide, and the point-only path flips model state: one predict at a time
# per process (an MMS worker is single-threaded anyway; a threaded server stays correct).
_PREDICT_LOCK = threading.Lock()


class ProphetPredictor:
    """A fitted Prophet model plus its metadata; answers ForecastRequests."""

    def __init__(self, model: Prophet, metadata: dict[str, Any], model_dir: Path) -> None:
        self.model = model
        self.metadata = metadata
        self.model_dir = model_dir
        self.customer = str(metadata["customer"])
        self.freq = str(metadata["freq"])
        self.last_observation = pd.Timestamp(metadata["end"])

    @classmethod
    def load(cls, model_dir: Path | str) -> ProphetPredictor:
        """Read and verify `model.json` + `metadata.json`; ModelMissingError or ModelInvalidError says what
        is wrong."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelMissingError(f"cannot serve the model in {model_dir}: the directory does not exist")
        try:
            model_json, metadata = read_model_dir(model_dir)
        except ArtifactError as exc:
            raise ModelInvalidError(f"cannot serve this model: {exc}") from None
        missing = [key for key in ("customer", "end", "freq") if not metadata.get(key)]
        if missing:
            raise invalid_model(model_dir, f"metadata.json lacks {', '.join(missing)}")
        try:
            pd.Timestamp(metadata["end"])
        except (ValueError, TypeError):
            raise invalid_model(
                model_dir, f"metadata.json end {metadata['end']!r} is not a timestamp"
            ) from None
        try:
            model = model_from_json(model_json)
        except Exception as exc:  # Prophet raises bare ValueError/KeyError/TypeError for bad JSON
            raise invalid_model(
                model_dir, f"model.json is not a Prophet model ({type(exc).__name__}: {exc})"
            ) from None
        if model.history is None:
            raise invalid_model(model_dir, "model.json holds an unfitted Prophet model")
        predictor = cls(model, metadata, model_dir)
        log.info(
            "loaded model for customer %s from %s (last observation %s, freq %s)",
            predictor.customer,
            model_dir,
            predictor.last_observation.isoformat(),
            predictor.freq,
        )
        return predictor

    @property
    def has_intervals(self) -> bool:
        return bool(self.model.uncertainty_samples)

    def future_dates(self, period: int, freq: str) -> pd.DataFrame:
        try:
            frame = future_frame(self.last_observation, period, freq)
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            raise bad_request(
                "bad_period",
                f"{period} steps of {freq!r} after {self.last_observation} "
                "run past the last date pandas can hold",
            ) from None
        if len(frame) != period:
            raise bad_request("bad_freq", f"freq {freq!r} does not give {period} dates after the history")
        return frame

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        """`{"customer": ..., "forecast": [{"ds", "yhat"[, "yhat_lower", "yhat_upper"]}, ...]}`."""
        intervals = resolve_intervals(request, self.has_intervals, self.customer)
        regressors = check_regressors(request, list(self.model.extra_regressors), self.customer)
        dates = self.future_dates(request.period, request.freq or self.freq)
        for name, values in regressors.items():  # the dates are in order, as the values are
            dates[name] = np.asarray(values, dtype=float)
        with _PREDICT_LOCK:
            predicted = self._predict(dates, intervals)
        ds = [stamp.isoformat() for stamp in predicted["ds"]]
        columns = ("yhat", "yhat_lower", "yhat_upper") if intervals else ("yhat",)
        values = {name: predicted[name].to_numpy(dtype=float) for name in columns}
        rows = [{"ds": ds[i], **{name: values[name][i] for name in columns}} for i in range(len(ds))]
        return {"customer": self.customer, "forecast": rows}

    def _predict(self, dates: pd.DataFrame, intervals: bool) -> pd.DataFrame:
        dates = add_condition_columns(dates, self.model.seasonalities)  # weekday/weekend, from ds
        if intervals:
            np.random.seed(INTERVAL_SEED)
            return self.model.predict(dates)
        samples = self.model.uncertainty_samples
        self.model.uncertainty_samples = 0  # skips the sampling that only the intervals need
        try:
            return self.model.predict(dates)
        finally:
            self.model.uncertainty_samples = samples
