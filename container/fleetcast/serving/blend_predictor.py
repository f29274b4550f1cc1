"""The blend model kind behind the serving interface: `load(model_dir)`, then `forecast(request)`.

Same contract as the other predictors (same request, response rows and error codes). A blend archive's
model.json is a stock Prophet model, so its Prophet part is loaded by the predictor any Prophet archive gets
(`compiled_predictor.load_predictor`: compiled, or Prophet's own with its warning), which also checks the
request (period, freq, regressors, intervals); its answer is then blended, row by row, with the seasonal
part metadata.json carries (`model/blend.py`), bounds included.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleetcast.model.archive import METADATA_FILE
from fleetcast.model.blend import Blend, BlendError, from_metadata
from fleetcast.serving.errors import invalid_model
from fleetcast.serving.protocol import ForecastRequest, forecast_rows

log = logging.getLogger(__name__)


class _Part(Protocol):
    customer: str

    @property
    def has_intervals(self) -> bool: ...

    def forecast(self, request: ForecastRequest) -> dict[str, Any]: ...


def blended_answer(answer: dict[str, Any], model: Blend) -> dict[str, Any]:
    """A Prophet predictor's answer (`{"customer", "forecast": [rows]}`) with every row blended."""
    rows = answer["forecast"]
    if not rows:
        return answer
    ds = np.array([row["ds"] for row in rows], dtype="datetime64[ns]")
    yhat = np.array([row["yhat"] for row in rows], dtype=np.float64)
    intervals = "yhat_lower" in rows[0]
    lower = np.array([row["yhat_lower"] for row in rows], dtype=np.float64) if intervals else None
    upper = np.array([row["yhat_upper"] for row in rows], dtype=np.float64) if intervals else None
    blended = model.combine(ds, yhat, lower, upper)
    bounds = (blended.yhat_lower, blended.yhat_upper) if intervals else (None, None)
    return {**answer, "forecast": forecast_rows(ds, blended.yhat, *bounds)}


class BlendPredictor:
    """A Prophet part's predictor plus the blend's weights and seasonal part."""

    def __init__(self, prophet: _Part, model: Blend, model_dir: Path) -> None:
        self.prophet = prophet
        self.model = model
        self.model_dir = model_dir
        self.customer = prophet.customer

    @classmethod
    def load(cls, model_dir: Path | str) -> BlendPredictor:
        """The Prophet part loaded as any Prophet archive, and the blend read from metadata.json."""
        from fleetcast.serving import compiled_predictor

        model_dir = Path(model_dir)
        prophet = compiled_predictor.load_predictor(model_dir)  # verifies the directory and model.json
        try:
            metadata = json.loads((model_dir / METADATA_FILE).read_text())
            model = from_metadata(metadata)
        except (OSError, ValueError) as exc:  # BlendError is a ValueError
            raise invalid_model(model_dir, f"not a blend model: {exc}") from None
        if prophet.has_intervals and not model.seasonal.intervals:  # training makes both parts alike
            raise invalid_model(model_dir, "not a blend model: its seasonal part has no intervals")
        log.info(
            "loaded blend %s for customer %s from %s (Prophet weight %.2f, %d season(s))",
            model.name,
            prophet.customer,
            model_dir,
            model.prophet_weight,
            len(model.season_weights),
        )
        return cls(prophet, model, model_dir)

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        """`{"customer": ..., "forecast": [{"ds", "yhat"[, "yhat_lower", "yhat_upper"]}, ...]}`."""
        return blended_answer(self.prophet.forecast(request), self.model)

    def to_document(self, prophet_document: dict[str, Any]) -> dict[str, Any]:
        """What `from_document` rebuilds this predictor from, given its Prophet part's document."""
        return {"model_dir": str(self.model_dir), "prophet": prophet_document, "blend": self.model.to_dict()}

    @staticmethod
    def blend_of(document: dict[str, Any]) -> Blend:
        try:
            return Blend.from_dict(document["blend"])
        except (KeyError, BlendError) as exc:
            raise invalid_model(Path(document.get("model_dir", "?")), f"not a blend model: {exc}") from None
