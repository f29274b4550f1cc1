"""The compiled predictor behind the serving interface: `load(model_dir)`, then `forecast(request)`.

Same contract as `ProphetPredictor` (same response rows, same error codes and messages), but the model is
a `CompiledModel`: loading reads `compiled.json` when the artifact carries one (written at training
time) or compiles `model.json` directly, and neither imports Prophet; a forecast is a few numpy
operations instead of Prophet's pandas pipeline.

`load_predictor` is what a server calls: the compiled predictor when the model is covered, otherwise
Prophet's own predictor, with a warning naming the reason (never a silently different forecast).

Intervals: by default each forecast replays the exact random stream ProphetPredictor seeds
(`np.random.seed(INTERVAL_SEED)` before Prophet's predict), so the two predictors answer every request
with the same numbers and a server can swap one for the other invisibly. `prophet_identical=False`
draws from a seeded numpy Generator instead: ~1.5x faster sampling, equally reproducible, and the same
distribution, but not the same draws as Prophet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fleetcast.model.archive import (
    COMPILED_SHA256_KEY,
    ArtifactError,
    read_compiled,
    read_model_dir,
    sha256_text,
)
from fleetcast.model.compiled import (
    COMPILED_FILE,
    CompiledModel,
    Forecast,
    NotCompilable,
    compile_model_json,
    future_dates,
    iso_strings,
)
from fleetcast.serving.draws import INTERVAL_SEED, ReplayMismatch, replayed_stream
from fleetcast.serving.errors import ModelInvalidError, ModelMissingError, invalid_model
from fleetcast.serving.protocol import (
    ForecastRequest,
    bad_request,
    check_regressors,
    forecast_rows,
    resolve_intervals,
)

if TYPE_CHECKING:
    from fleetcast.serving.predictor import ProphetPredictor

log = logging.getLogger(__name__)

# Requests whose interval draws come from the per-shape cache (serving/draws.py): up to this many
# (samples x dates), i.e. 2 MB of cached draws per shape; longer forecasts draw afresh.
REPLAY_MAX_DRAWS = 64_000


def compiled_document(model_json: str) -> str:
    """The `compiled.json` text for a model.json (raises NotCompilable): its numbers and its checksum.

    The checksum ties it to the model.json it came from, so a stale or mismatched file is never used.
    """
    document = {"model_sha256": sha256_text(model_json), **compile_model_json(model_json).to_dict()}
    return json.dumps(document, separators=(",", ":"))


class _ProphetStream(threading.local):
    """numpy's legacy generator in the state `np.random.seed(INTERVAL_SEED)` leaves, per thread.

    Seeding MT19937 costs ~160 us; restoring a saved state costs ~40 us.
    """

    def __init__(self) -> None:
        self.generator = np.random.RandomState(INTERVAL_SEED)
        self.seeded_state = self.generator.get_state()

    def fresh(self) -> np.random.RandomState:
        self.generator.set_state(self.seeded_state)
        return self.generator


_PROPHET_STREAM = _ProphetStream()


class CompiledPredictor:
    """A CompiledModel plus its metadata; answers ForecastRequests like ProphetPredictor."""

    def __init__(
        self,
        compiled: CompiledModel,
        metadata: dict[str, Any],
        model_dir: Path,
        *,
        source: str,
        prophet_identical: bool = True,
    ) -> None:
        self.compiled = compiled
        self.metadata = metadata
        self.model_dir = model_dir
        self.source = source  # "compiled.json" or "model.json": how it was loaded
        self.compiled_text: str | None = None  # compiled.json as shipped, when loaded from it
        self.prophet_identical = prophet_identical
        self.customer = str(metadata["customer"])
        self.freq = str(metadata["freq"])
        self.last_observation = _timestamp(metadata["end"])

    @classmethod
    def load(cls, model_dir: Path | str, *, prophet_identical: bool = True) -> CompiledPredictor:
        """Read and verify the model directory; ModelMissingError or ModelInvalidError for a broken one,
        NotCompilable for a valid model the compiled form does not cover."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelMissingError(f"cannot serve the model in {model_dir}: the directory does not exist")
        compiled, model_json = _shipped_compiled(model_dir), ""
        if compiled is not None:
            compiled_model, metadata, compiled_text = compiled
        else:
            try:
                model_json, metadata = read_model_dir(model_dir)
            except ArtifactError as exc:
                raise ModelInvalidError(f"cannot serve this model: {exc}") from None
        missing = [key for key in ("customer", "end", "freq") if not metadata.get(key)]
        if missing:
            raise invalid_model(model_dir, f"metadata.json lacks {', '.join(missing)}")
        try:
            _timestamp(metadata["end"])
        except (ValueError, TypeError):
            raise invalid_model(
                model_dir, f"metadata.json end {metadata['end']!r} is not a timestamp"
            ) from None
        if compiled is not None:
            source = COMPILED_FILE  # shipped by training and verified: model.json was never parsed
        else:
            compiled_text = None
            compiled_model, source = _compiled_from_dir(model_dir, model_json, metadata)
        predictor = cls(
            compiled_model, metadata, model_dir, source=source, prophet_identical=prophet_identical
        )
        predictor.compiled_text = compiled_text
        if log.isEnabledFor(logging.INFO):  # (formatting the date costs more than the rest of a load)
            log.info(
                "loaded compiled model for customer %s from %s/%s (last observation %s, freq %s)",
                predictor.customer,
                model_dir,
                source,
                iso_strings(np.array([predictor.last_observation]))[0],
                predictor.freq,
            )
        return predictor

    @property
    def has_intervals(self) -> bool:
        return self.compiled.uncertainty_samples > 0

    def future_dates(self, period: int, freq: str) -> np.ndarray:
        try:
            dates = future_dates(self.last_observation, period, freq)
        except OverflowError:
            last = iso_strings(np.array([self.last_observation]))[0]
            raise bad_request(
                "bad_period",
                f"{period} steps of {freq!r} after {last} run past the last date pandas can hold",
            ) from None
        except ValueError as exc:
            raise bad_request("bad_freq", f"freq {freq!r}: {exc}") from None
        if len(dates) != period:
            raise bad_request("bad_freq", f"freq {freq!r} does not give {period} dates after the history")
        return dates

    def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        """`{"customer": ..., "forecast": [{"ds", "yhat"[, "yhat_lower", "yhat_upper"]}, ...]}`."""
        intervals = resolve_intervals(request, self.has_intervals, self.customer)
        regressors = check_regressors(request, self.compiled.regressor_names, self.customer)
        dates = self.future_dates(request.period, request.freq or self.freq)
        predicted = self._predict(dates, intervals, regressors)
        bounds = (predicted.yhat_lower, predicted.yhat_upper) if intervals else (None, None)
        return {"customer": self.customer, "forecast": forecast_rows(predicted.ds, predicted.yhat, *bounds)}

    def _predict(
        self, dates: np.ndarray, intervals: bool, regressors: dict[str, np.ndarray] | None
    ) -> Forecast:
        if not (intervals and self.prophet_identical):
            return self.compiled.predict(
                dates, intervals=intervals, seed=INTERVAL_SEED, regressors=regressors
            )
        samples = self.compiled.uncertainty_samples
        if samples * len(dates) <= REPLAY_MAX_DRAWS:
            # Every request replays one seeded stream: its draws for this shape are made once per process
            # and scaled per model, bit for bit what drawing them again gives (serving/draws.py).
            try:
                stream = replayed_stream(samples, len(dates)).fresh()
                return self.compiled.predict(dates, intervals=True, seed=stream, regressors=regressors)
            except ReplayMismatch as exc:
                log.debug("drawing afresh: %s", exc)
        stream = _PROPHET_STREAM.fresh()
        return self.compiled.predict(dates, intervals=True, seed=stream, regressors=regressors)


def load_predictor(
    model_dir: Path | str, *, prophet_identical: bool = True
) -> CompiledPredictor | ProphetPredictor:
    """The compiled predictor, or Prophet's own when the model uses something the compiled form lacks."""
    started = time.perf_counter()
    try:
        return CompiledPredictor.load(model_dir, prophet_identical=prophet_identical)
    except NotCompilable as exc:
        log.warning(
            "model in %s: the compiled predictor does not cover %s; serving it with Prophet's own predict "
            "instead (same forecasts, ~100x slower per request and far more memory)",
            model_dir,
            exc.reason,
        )
        from fleetcast.serving.predictor import ProphetPredictor

        predictor = ProphetPredictor.load(model_dir)
        log.warning(
            "customer %s: Prophet fallback loaded in %.0f ms",
            predictor.customer,
            (time.perf_counter() - started) * 1000,
        )
        return predictor


def _shipped_compiled(model_dir: Path) -> tuple[CompiledModel, dict[str, Any], str] | None:
    """The archive's own compiled.json when its checksums vouch for it (`archive.read_compiled`): the
    model loads without reading or parsing model.json. None: read and compile model.json instead."""
    shipped = read_compiled(model_dir)
    if shipped is None:
        return None
    text, document, metadata = shipped
    try:
        return CompiledModel.from_dict(document), metadata, text
    except Exception as exc:  # a format this reader cannot take (a newer one): model.json still can
        log.warning("%s: ignoring %s (%s); compiling model.json instead", model_dir, COMPILED_FILE, exc)
        return None


def _compiled_from_dir(
    model_dir: Path, model_json: str, metadata: dict[str, Any]
) -> tuple[CompiledModel, str]:
    """A compiled.json placed beside an archive written without one (no checksum in metadata.json for
    it) when made from this model.json; otherwise compile model.json."""
    path = model_dir / COMPILED_FILE
    model_sha256 = str(metadata.get("model_sha256"))
    if COMPILED_SHA256_KEY in metadata:  # shipped in the archive, and _shipped_compiled refused it
        if path.exists():
            log.warning("%s: %s does not match metadata.json; compiling model.json", model_dir, COMPILED_FILE)
    elif path.is_file():
        try:
            document = json.loads(path.read_text())
            if document.get("model_sha256") != model_sha256:
                raise ValueError("it was made from a different model.json")
            return CompiledModel.from_dict(document), COMPILED_FILE
        except Exception as exc:  # unreadable, stale or wrong-typed: model.json is the source of truth
            log.warning("%s: ignoring %s (%s); compiling model.json instead", model_dir, COMPILED_FILE, exc)
    try:
        return compile_model_json(model_json), "model.json"
    except NotCompilable:
        raise
    except ValueError as exc:
        raise invalid_model(model_dir, str(exc)) from None
    except Exception as exc:  # wrong-typed fields fail deep in numpy (AssertionError, TypeError, ...)
        raise invalid_model(
            model_dir,
            f"model.json has fields of the wrong type ({type(exc).__name__}: {exc})",
        ) from None


def _timestamp(text: Any) -> np.datetime64:
    """metadata's ISO timestamp as datetime64[ns]; numpy parses the common forms, pandas the rest."""
    if not isinstance(text, str):
        raise TypeError(f"{text!r} is not a timestamp string")
    try:
        with warnings.catch_warnings():
            # numpy converts a "+01:00" suffix to UTC with only a warning; let pandas refuse it instead.
            warnings.simplefilter("error", UserWarning)
            return np.datetime64(text, "ns")
    except (ValueError, UserWarning):
        import pandas as pd

        stamp = pd.Timestamp(text)
        if stamp.tzinfo is not None:
            raise ValueError(f"{text!r} has a time zone; Prophet models are time-zone naive") from None
        return stamp.to_datetime64().astype("datetime64[ns]")
