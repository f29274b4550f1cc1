"""The seasonal-naive model behind the serving interface: `load(model_dir)`, then `forecast(request)`.

Same contract as the Prophet-backed predictors (same response rows, same error codes): a customer whose
best model was "same as last week" is asked and answered exactly like any other. The model is
`fleetcast.model.baseline.SeasonalNaive`; a forecast is a lookup into its last season of values, and its
intervals come from the spread of its own past errors (deterministic: no sampling).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fleetcast.model.archive import ArtifactError, read_model_dir
from fleetcast.model.baseline import BaselineError, SeasonalNaive
from fleetcast.model.compiled import future_dates, iso_strings
from fleetcast.serving.errors import ModelInvalidError, ModelMissingError, invalid_model
from fleetcast.serving.protocol import ForecastRequest, bad_request, forecast_rows, resolve_intervals

log = logging.getLogger(__name__)


class BaselinePredictor:
    """A SeasonalNaive model plus its metadata; answers ForecastRequests like the Prophet predictors."""

    def __init__(self, model: SeasonalNaive, metadata: dict[str, Any], model_dir: Path) -> None:
        self.model = model
        self.metadata = metadata
        self.model_dir = model_dir
        self.customer = str(metadata["customer"])
        self.freq = model.freq

    @classmethod
    def load(cls, model_dir: Path | str) -> BaselinePredictor:
        """Read and verify the model directory; ModelMissingError or ModelInvalidError says what is wrong."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelMissingError(f"cannot serve the model in {model_dir}: the directory does not exist")
        try:
            model_json, metadata = read_model_dir(model_dir)
        except ArtifactError as exc:
            raise ModelInvalidError(f"cannot serve this model: {exc}") from None
        if not metadata.get("customer"):
            raise invalid_model(model_dir, "metadata.json lacks customer")
        try:
            model = SeasonalNaive.from_json(model_json)
        except BaselineError as exc:
            problem = f"model.json is not a seasonal-naive model: {exc}"
            raise invalid_model(model_dir, problem) from None
        predictor = cls(model, metadata, model_dir)
        log.info(
            "loaded seasonal-naive model for customer %s from %s (last observation %s, freq %s)",
            predictor.customer,
            model_dir,
            iso_strings(model.last_observation.reshape(1))[0],
            predictor.freq,
        )
        return predictor

    @property
    def has_intervals(self) -> bool:
        return self.model.intervals

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        """`{"customer": ..., "forecast": [{"ds", "yhat"[, "yhat_lower", "yhat_upper"]}, ...]}`."""
        intervals = resolve_intervals(request, self.has_intervals, self.customer)
        freq = request.freq or self.freq
        last = self.model.last_observation
        try:
            dates = future_dates(last, request.period, freq)
        except OverflowError:
            raise bad_request(
                "bad_period",
                f"{request.period} steps of {freq!r} after {iso_strings(last.reshape(1))[0]} "
                "run past the last date pandas can hold",
            ) from None
        except ValueError as exc:
            raise bad_request("bad_freq", f"freq {freq!r}: {exc}") from None
        if len(dates) != request.period:
            raise bad_request(
                "bad_freq", f"freq {freq!r} does not give {request.period} dates after the history"
            )
        predicted = self.model.predict(dates, intervals=intervals)
        bounds = (predicted.yhat_lower, predicted.yhat_upper) if intervals else (None, None)
        return {"customer": self.customer, "forecast": forecast_rows(predicted.ds, predicted.yhat, *bounds)}

    def to_document(self) -> dict[str, Any]:
        """What `from_document` rebuilds this predictor from in another process (no file reads)."""
        return {
            "model_dir": str(self.model_dir),
            "metadata": {"customer": self.customer},
            "model": self.model.to_dict(),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> BaselinePredictor:
        return cls(
            SeasonalNaive.from_dict(document["model"]), document["metadata"], Path(document["model_dir"])
        )
