"""Model kinds made of a Prophet part and a seasonal part: the blend and the seasonal change.

In both, the archive's model.json is stock Prophet JSON (loaded, compiled and checked as any Prophet
model) and a metadata.json entry holds the rest; `from_metadata` reads that entry for the archive's kind,
and its `combine(dates, yhat, lower, upper)` turns the Prophet part's forecast into the customer's.
Every reader of archives (the servers, `fleetcast forecast`, `fleetcast plot`) goes through here.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from fleetcast.model import baseline, blend, seasonal_change
from fleetcast.model.archive import BLEND_KIND, CHANGE_KIND, model_kind


class Composed(Protocol):
    seasonal: baseline.SeasonalNaive
    name: str

    def combine(
        self,
        dates: np.ndarray,
        yhat: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> baseline.Prediction: ...

    def to_dict(self) -> dict[str, Any]: ...


# kind -> (metadata.json's key, the class its document is)
_PARTS: dict[str, tuple[str, Any]] = {
    BLEND_KIND: (blend.BLEND_KEY, blend.Blend),
    CHANGE_KIND: (seasonal_change.CHANGE_KEY, seasonal_change.SeasonalChange),
}


def _part(kind: str) -> tuple[str, Any]:
    if kind not in _PARTS:
        raise ValueError(f"a {kind} model has no seasonal part")
    return _PARTS[kind]


def metadata_key(kind: str) -> str:
    """The metadata.json entry holding a composed kind's seasonal part."""
    return _part(kind)[0]


def from_document(kind: str, document: Any) -> Composed:
    """The model a `to_dict` document of `kind` describes; a ValueError naming what is wrong if not."""
    return _part(kind)[1].from_dict(document)


def from_metadata(metadata: dict[str, Any]) -> Composed:
    """The seasonal part metadata.json carries for its kind; a ValueError naming what is wrong if none."""
    kind = model_kind(metadata)
    key = metadata_key(kind)
    if key not in metadata:
        raise ValueError(f"metadata.json lacks {key!r}")
    return from_document(kind, metadata[key])
