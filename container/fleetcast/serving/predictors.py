"""What every server holds for a customer: one `Predictor` protocol and one factory behind it.

`load_predictor(model_dir)` picks the predictor by the model kind metadata.json names: the seasonal-naive
baseline (`baseline_predictor`), a blend or seasonal change (`composed_predictor`: its Prophet part loaded
as below), or a Prophet model through `compiled_predictor.load_predictor`
(compiled.json, or model.json compiled without pandas or Prophet; Prophet's own predictor, with a
warning, for a model the compiled form does not cover). `load_model(model_dir)` wraps it for the lean
server and returns a `LoadedModel`: the predictor, a small JSON document from which any
other process rebuilds the same predictor in microseconds (`from_document`, no file reads), and an
estimate of its size for a memory budget.

A model that cannot be loaded raises `errors.ModelMissingError` (no such directory) or
`errors.ModelInvalidError` (anything wrong with its files, including fields of the wrong type), each naming
the directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fleetcast.model.archive import BASELINE_KIND, COMPOSED_KINDS, ArtifactError, peek_kind
from fleetcast.model.compiled import CompiledModel
from fleetcast.serving import compiled_predictor
from fleetcast.serving.baseline_predictor import BaselinePredictor
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.composed_predictor import ComposedPredictor
from fleetcast.serving.errors import ModelInvalidError, ModelMissingError
from fleetcast.serving.protocol import ForecastRequest

log = logging.getLogger(__name__)

# Python objects around a compiled model's arrays (dicts, dataclasses, array headers): bench/predictor.py
# on the compiled branch and bench/serving_compare.py measure a few KiB per model per worker.
COMPILED_OVERHEAD_BYTES = 8 * 1024
# A typical compiled model's estimate (daily, weekly + yearly seasonality): sizes a worker cache's cap.
COMPILED_COPY_BYTES = 12 * 1024
# A Prophet model in memory (history frames, Stan backend object) is far bigger than its JSON.
PROPHET_BYTES_PER_JSON_BYTE = 12
PROPHET_BASE_BYTES = 2 * 1024 * 1024
METADATA_KEPT = ("customer", "end", "freq", "model_sha256")


class Predictor(Protocol):
    customer: str

    def forecast(self, request: ForecastRequest) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    document: dict[str, Any]  # JSON-able; from_document() rebuilds the predictor from it
    estimate_bytes: int
    compiled: bool  # False: Prophet's own predictor (the slow fallback)


def _compiled_size(model: CompiledModel) -> int:
    arrays = (model.deltas, model.changepoints_t, model.beta)
    return COMPILED_OVERHEAD_BYTES + 3 * sum(int(array.nbytes) for array in arrays)


def load_predictor(model_dir: Path | str) -> Predictor:
    """The predictor for the kind of model in `model_dir`; ModelMissingError or ModelInvalidError if not."""
    try:
        kind = peek_kind(Path(model_dir))
    except ArtifactError as exc:
        raise ModelInvalidError(f"cannot serve the model in {model_dir}: {exc}") from None
    if kind == BASELINE_KIND:
        return BaselinePredictor.load(model_dir)
    if kind in COMPOSED_KINDS:
        return ComposedPredictor.load(model_dir)
    return compiled_predictor.load_predictor(model_dir)


def load_model(model_dir: Path | str) -> LoadedModel:
    """Load one model directory; ModelMissingError or ModelInvalidError (naming the directory) if not."""
    model_dir = Path(model_dir)
    try:
        predictor = load_predictor(model_dir)
    except (ModelMissingError, ModelInvalidError) as exc:
        if str(model_dir) in exc.message:
            raise
        raise type(exc)(f"{model_dir}: {exc.message}", code=exc.code) from None
    except Exception as exc:  # a model that breaks the loader is the model's fault, never the server's
        raise ModelInvalidError(
            f"cannot serve the model in {model_dir}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(predictor, ComposedPredictor):
        part = _loaded(predictor.prophet, model_dir)
        seasonal = predictor.model.seasonal
        estimate = part.estimate_bytes + 3 * (seasonal.stamps_ns.nbytes + seasonal.values.nbytes)
        document = {"kind": "composed", **predictor.to_document(part.document)}
        return LoadedModel(predictor, document, estimate, compiled=part.compiled)
    return _loaded(predictor, model_dir)


def _loaded(predictor: Predictor, model_dir: Path) -> LoadedModel:
    """The LoadedModel of a baseline, compiled or Prophet predictor."""
    if isinstance(predictor, BaselinePredictor):
        document = {"kind": "baseline", **predictor.to_document()}
        arrays = (predictor.model.stamps_ns, predictor.model.values)
        estimate = COMPILED_OVERHEAD_BYTES + 3 * sum(int(array.nbytes) for array in arrays)
        return LoadedModel(predictor, document, estimate, compiled=True)
    if isinstance(predictor, CompiledPredictor):
        # The shipped text is needed only here: a worker's cached predictor must not keep 1.4 KB more.
        shipped_text, predictor.compiled_text = predictor.compiled_text, None
        document = {
            "kind": "compiled",
            "model_dir": str(model_dir),
            "source": predictor.source,
            "metadata": {key: predictor.metadata.get(key) for key in METADATA_KEPT},
            # The shipped compiled.json as is: encoding its numbers again cost more than the rest of a load.
            "compiled_json": shipped_text or json.dumps(predictor.compiled.to_dict()),
        }
        return LoadedModel(predictor, document, _compiled_size(predictor.compiled), compiled=True)
    json_bytes = (model_dir / "model.json").stat().st_size
    estimate = PROPHET_BASE_BYTES + PROPHET_BYTES_PER_JSON_BYTE * json_bytes
    return LoadedModel(predictor, {"kind": "prophet", "model_dir": str(model_dir)}, estimate, compiled=False)


def from_document(document: dict[str, Any]) -> Predictor:
    """Rebuild, in another worker, the predictor that load_model built."""
    if document.get("kind") == "composed":
        return ComposedPredictor.from_document(document, from_document(document["prophet"]))
    if document.get("kind") == "baseline":
        return BaselinePredictor.from_document(document)
    if document.get("kind") == "compiled":
        return CompiledPredictor(
            CompiledModel.from_dict(json.loads(document["compiled_json"])),
            document["metadata"],
            Path(document["model_dir"]),
            source=document["source"],
        )
    from fleetcast.serving.predictor import ProphetPredictor

    return ProphetPredictor.load(document["model_dir"])
