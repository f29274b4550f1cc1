"""One customer's batch forecast from its archive: the numbers the endpoint would answer, as arrays.

The archive is read and verified once (`model.archive.read_archive`), compiled without Prophet
(`model.compiled`), and forecast `period` steps after the last observation with the interval draws the
served path uses (`draws.ReplayedStream`), so a row here equals the endpoint's answer for the same
customer and period. A model the compiled predictor does not cover goes through the serving factory
(`serving.predictors.load_model`: Prophet's own predict, with its warning), never a different forecast;
a seasonal-naive model (the baseline kind) through the predictor the servers use for it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetcast.forecast.regressors import RegressorsError, future_regressors
from fleetcast.model import archive
from fleetcast.model.compiled import CompiledModel, NotCompilable, compile_model_json
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.draws import replayed_stream
from fleetcast.serving.errors import ServingError
from fleetcast.serving.protocol import ForecastRequest

log = logging.getLogger(__name__)

COMPILED, PROPHET, BASELINE = "compiled", "prophet", "seasonal-naive"


class CustomerFailed(Exception):  # noqa: N818 - a customer failed, not a program error
    """This customer's archive cannot be forecast; the reason is for the job's report."""


@dataclass(frozen=True)
class CustomerForecast:
    customer: str
    model: str  # the candidate training chose (metadata "model"), as the dataset's `model` column
    ds: np.ndarray  # datetime64[ns]
    yhat: np.ndarray
    yhat_lower: np.ndarray | None  # None for a model trained without intervals
    yhat_upper: np.ndarray | None
    predictor: str  # COMPILED or PROPHET
    source: str = (
        archive.MODEL_FILE
    )  # the archive member the model was read from (compiled.json or model.json)


def forecast_archive(path: Path, period: int, regressors: Path | None = None) -> CustomerForecast:
    """Read, verify and forecast one `<customer>.tar.gz`; CustomerFailed says why it cannot be.

    An archive carrying compiled.json (training writes one beside every Prophet model.json it covers) is
    forecast from it, as a server loads it, without verifying or parsing model.json; one without it (older
    archives, or a compiled.json this reader cannot take) from model.json. A model trained with regressors
    takes their future values from `regressors` (`forecast/regressors.py`).
    """
    try:
        contents = archive.read_archive_contents(path, model=False)
        shipped = _shipped_compiled(contents)
        if shipped is not None:
            forecast = _compiled_forecast(
                shipped, contents.metadata, period, path, archive.COMPILED_FILE, regressors
            )
            # A blend's or seasonal change's compiled.json is its Prophet part's.
            if contents.metadata.get(archive.KIND_KEY) in archive.COMPOSED_KINDS:
                return _combined(forecast, contents.metadata, path)
            return forecast
        model_json = contents.model_json()
    except archive.ArtifactError as exc:
        raise CustomerFailed(str(exc)) from None
    return forecast_model(model_json, contents.metadata, period, path, regressors)


def _shipped_compiled(contents: archive.ArchiveContents) -> CompiledModel | None:
    """The archive's compiled.json as a model, for a Prophet (or composed) archive that carries one this
    code can read."""
    kind = contents.metadata.get(archive.KIND_KEY, archive.PROPHET_KIND)
    compiled_kinds = (archive.PROPHET_KIND, *archive.COMPOSED_KINDS)
    if contents.compiled is None or kind not in compiled_kinds:  # forecast_model names a bad kind
        return None
    try:
        return CompiledModel.from_dict(contents.compiled)
    except Exception as exc:  # a format this reader cannot take (a newer one): model.json still can
        log.warning(
            "%s: ignoring %s (%s); compiling model.json instead", contents.path, archive.COMPILED_FILE, exc
        )
        return None


def forecast_model(
    model_json: str, metadata: dict[str, Any], period: int, where: Path, regressors: Path | None = None
) -> CustomerForecast:
    """Forecast a verified model.json + metadata.json pair, of either model kind."""
    try:
        kind = archive.model_kind(metadata)
    except archive.ArtifactError as exc:
        raise CustomerFailed(f"{where}: {exc}") from None
    if kind == archive.BASELINE_KIND:
        return _baseline_forecast(model_json, metadata, period, where)
    if kind in archive.COMPOSED_KINDS:
        return _composed_forecast(model_json, metadata, period, where, regressors)
    _require_metadata(metadata, where)
    try:
        # More than one step never needs the training history's step (only a single future date does).
        compiled = compile_model_json(model_json, history_step=period == 1)
    except NotCompilable as exc:
        return _prophet_forecast(model_json, metadata, period, where, exc.reason, regressors)
    except Exception as exc:  # a corrupt model is this customer's failure alone
        raise CustomerFailed(f"{where}: {type(exc).__name__}: {exc}") from None
    return _compiled_forecast(compiled, metadata, period, where, archive.MODEL_FILE, regressors)


def _require_metadata(metadata: dict[str, Any], where: Path) -> None:
    for key in ("customer", "end", "freq"):
        if not metadata.get(key):
            raise CustomerFailed(f"{where}: metadata.json lacks {key}")


def _compiled_forecast(
    compiled: CompiledModel,
    metadata: dict[str, Any],
    period: int,
    where: Path,
    source: str,
    regressors: Path | None = None,
) -> CustomerForecast:
    """The compiled predictor's forecast, with the interval draws the served path replays."""
    _require_metadata(metadata, where)
    try:
        predictor = CompiledPredictor(compiled, metadata, where, source=source)
        dates = predictor.future_dates(period, predictor.freq)
    except ServingError as exc:
        raise CustomerFailed(f"{where}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise CustomerFailed(f"{where}: metadata.json: {exc}") from None
    values = _future_values(regressors, predictor.customer, compiled.regressor_names, dates, where)
    samples = compiled.uncertainty_samples
    stream = replayed_stream(samples, period).fresh() if samples else None
    predicted = compiled.predict(dates, intervals=samples > 0, seed=stream, regressors=values)
    return CustomerForecast(
        customer=predictor.customer,
        model=str(metadata.get("model") or ""),
        ds=predicted.ds,
        yhat=predicted.yhat,
        yhat_lower=predicted.yhat_lower,
        yhat_upper=predicted.yhat_upper,
        predictor=COMPILED,
        source=source,
    )


def _future_values(
    source: Path | None, customer: str, names: tuple[str, ...], dates: np.ndarray, where: Path
) -> dict[str, np.ndarray] | None:
    if not names:
        return None
    try:
        return future_regressors(source, customer, names, dates)
    except RegressorsError as exc:
        raise CustomerFailed(f"{where}: {exc}") from None


def _baseline_forecast(
    model_json: str, metadata: dict[str, Any], period: int, where: Path
) -> CustomerForecast:
    """A seasonal-naive model's forecast, answered by the predictor the servers use for that kind."""
    from fleetcast.model.baseline import BaselineError, SeasonalNaive
    from fleetcast.serving.baseline_predictor import BaselinePredictor

    if not metadata.get("customer"):
        raise CustomerFailed(f"{where}: metadata.json lacks customer")
    try:
        predictor = BaselinePredictor(SeasonalNaive.from_json(model_json), metadata, where)
        answer = predictor.forecast(ForecastRequest(period=period))
    except BaselineError as exc:
        raise CustomerFailed(f"{where}: model.json is not a seasonal-naive model: {exc}") from None
    except ServingError as exc:
        raise CustomerFailed(f"{where}: {exc.message}") from None
    return _from_rows(answer, metadata, BASELINE)


def _composed_forecast(
    model_json: str, metadata: dict[str, Any], period: int, where: Path, regressors: Path | None = None
) -> CustomerForecast:
    """A blend's or seasonal change's forecast: its Prophet part (model.json) forecast as a Prophet
    archive's, then completed by its seasonal part."""
    prophet_part = {**metadata, archive.KIND_KEY: archive.PROPHET_KIND}
    return _combined(forecast_model(model_json, prophet_part, period, where, regressors), metadata, where)


def _combined(part: CustomerForecast, metadata: dict[str, Any], where: Path) -> CustomerForecast:
    """The Prophet part's forecast completed by the seasonal part metadata.json carries, exactly as the
    servers' composed predictor does."""
    from dataclasses import replace

    from fleetcast.model import composed

    try:
        model = composed.from_metadata(metadata)
    except (ValueError, archive.ArtifactError) as exc:
        raise CustomerFailed(f"{where}: not a {metadata.get(archive.KIND_KEY)} model: {exc}") from None
    combined = model.combine(part.ds, part.yhat, part.yhat_lower, part.yhat_upper)
    return replace(part, yhat=combined.yhat, yhat_lower=combined.yhat_lower, yhat_upper=combined.yhat_upper)


def _from_rows(answer: dict[str, Any], metadata: dict[str, Any], predictor: str) -> CustomerForecast:
    """A served answer (`{"customer", "forecast": [rows]}`) as arrays."""
    rows = answer["forecast"]
    has_intervals = bool(rows) and "yhat_lower" in rows[0]

    def column(name: str) -> np.ndarray:
        return np.array([row[name] for row in rows], dtype=np.float64)

    return CustomerForecast(
        customer=str(answer["customer"]),
        model=str(metadata.get("model") or ""),
        ds=np.array([row["ds"] for row in rows], dtype="datetime64[ns]"),
        yhat=column("yhat"),
        yhat_lower=column("yhat_lower") if has_intervals else None,
        yhat_upper=column("yhat_upper") if has_intervals else None,
        predictor=predictor,
    )


def _prophet_forecast(
    model_json: str,
    metadata: dict[str, Any],
    period: int,
    where: Path,
    reason: str,
    regressors: Path | None = None,
) -> CustomerForecast:
    """The serving factory's answer for a model the compiled form does not cover (Prophet's predict)."""
    from fleetcast.serving.predictors import load_model

    log.warning(
        "%s: the compiled predictor does not cover %s; forecasting with Prophet's predict", where, reason
    )
    with tempfile.TemporaryDirectory(prefix="fleetcast-forecast-") as folder:
        model_dir = Path(folder)
        (model_dir / archive.MODEL_FILE).write_text(model_json)
        (model_dir / archive.METADATA_FILE).write_text(json.dumps(metadata))
        try:
            predictor = load_model(model_dir).predictor
            needed = tuple(metadata.get("regressors") or ())
            values = None
            if needed:
                future = predictor.future_dates(period, str(metadata["freq"]))  # Prophet's frame
                dates = future["ds"].to_numpy(dtype="datetime64[ns]")
                found = _future_values(regressors, str(metadata["customer"]), needed, dates, where)
                values = {name: tuple(column.tolist()) for name, column in (found or {}).items()}
            answer = predictor.forecast(ForecastRequest(period=period, regressors=values))
        except ServingError as exc:
            raise CustomerFailed(f"{where}: {exc.message}") from None
    return _from_rows(answer, metadata, PROPHET)
