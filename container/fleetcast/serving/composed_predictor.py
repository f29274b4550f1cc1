"""The composed model kinds behind the serving interface: `load(model_dir)`, then `forecast(request)`.

A blend or a seasonal change (`model/composed.py`) is a stock Prophet model.json plus a seasonal part in
metadata.json. Same contract as the other predictors (same request, response rows and error codes). The
Prophet part is loaded by the predictor any Prophet archive gets (`compiled_predictor.load_predictor`:
compiled, or Prophet's own with its warning), which also checks the request (period, freq, regressors,
intervals); its answer is then completed row by row, bounds included, by the seasonal part.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleetcast.model import composed
from fleetcast.model.archive import METADATA_FILE, ArtifactError, model_kind
from fleetcast.serving.errors import invalid_model
from fleetcast.serving.protocol import ForecastRequest, forecast_rows

log = logging.getLogger(__name__)


class _Part(Protocol):
    customer: str

    @property
    def has_intervals(self) -> bool: ...

    def forecast(self, request: ForecastRequest) -> dict[str, Any]: ...


def combined_answer(answer: dict[str, Any], model: composed.Composed) -> dict[str, Any]:
    """A Prophet part's answer (`{"customer", "forecast": [rows]}`) with every row completed by `model`."""
    rows = answer["forecast"]
    if not rows:
        return answer
    ds = np.array([row["ds"] for row in rows], dtype="datetime64[ns]")
    yhat = np.array([row["yhat"] for row in rows], dtype=np.float64)
    intervals = "yhat_lower" in rows[0]
    lower = np.array([row["yhat_lower"] for row in rows], dtype=np.float64) if intervals else None
    upper = np.array([row["yhat_upper"] for row in rows], dtype=np.float64) if intervals else None
    combined = model.combine(ds, yhat, lower, upper)
    bounds = (combined.yhat_lower, combined.yhat_upper) if intervals else (None, None)
    return {**answer, "forecast": forecast_rows(ds, combined.yhat, *bounds)}


class ComposedPredictor:
    """A Prophet part's predictor plus the seasonal part of a blend or seasonal change."""

    def __init__(self, prophet: _Part, kind: str, model: composed.Composed, model_dir: Path) -> None:
        self.prophet = prophet
        self.kind = kind
        self.model = model
        self.model_dir = model_dir
        self.customer = prophet.customer

    @classmethod
    def load(cls, model_dir: Path | str) -> ComposedPredictor:
        """The Prophet part loaded as any Prophet archive, and the seasonal part read from metadata.json."""
        from fleetcast.serving import compiled_predictor

        model_dir = Path(model_dir)
        prophet = compiled_predictor.load_predictor(model_dir)  # verifies the directory and model.json
        try:
            metadata = json.loads((model_dir / METADATA_FILE).read_text())
            kind = model_kind(metadata)
        except (OSError, ValueError, ArtifactError) as exc:
            raise invalid_model(model_dir, f"unreadable metadata.json: {exc}") from None
        try:
            model = composed.from_metadata(metadata)
        except ValueError as exc:  # what is wrong with its document
            raise invalid_model(model_dir, f"not a {kind} model: {exc}") from None
        if prophet.has_intervals and not model.seasonal.intervals:  # training makes both parts alike
            raise invalid_model(model_dir, f"not a {kind} model: its seasonal part has no intervals")
        log.info("loaded %s %s for customer %s from %s", kind, model.name, prophet.customer, model_dir)
        return cls(prophet, kind, model, model_dir)

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        """`{"customer": ..., "forecast": [{"ds", "yhat"[, "yhat_lower", "yhat_upper"]}, ...]}`."""
        return combined_answer(self.prophet.forecast(request), self.model)

    def to_document(self, prophet_document: dict[str, Any]) -> dict[str, Any]:
        """What `from_document` rebuilds this predictor from, given its Prophet part's document."""
        return {
            "model_dir": str(self.model_dir),
            "prophet": prophet_document,
            "composed_kind": self.kind,
            "seasonal_part": self.model.to_dict(),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any], prophet: _Part) -> ComposedPredictor:
        """The predictor `to_document` describes, around its Prophet part rebuilt by the caller."""
        model_dir = Path(document.get("model_dir", "?"))
        kind = document.get("composed_kind", "?")
        try:
            model = composed.from_document(kind, document["seasonal_part"])
        except (KeyError, ValueError) as exc:
            raise invalid_model(model_dir, f"not a {kind} model: {exc}") from None
        return cls(prophet, kind, model, model_dir)
