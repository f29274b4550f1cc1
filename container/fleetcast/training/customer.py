"""Training one customer: read, clean, resume check, holdout score, fit on everything, write the archive.

The resume check asks, in order: is the version the previous fleet manifest names for this customer
still current (same data, same settings)? Then it keeps serving: nothing is copied or retrained. Else, did
this run already write the archive (a restarted job gets its own run's checkpoints back)? Then it is kept.

Runs inside a worker process. Every failure is caught here and returned as data, so one broken customer
never takes the fleet down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcast.model import archive, baseline, blend, composed, dates, manifest, seasonal_change
from fleetcast.model.fit import engine
from fleetcast.training import evaluate, selection
from fleetcast.training.config import TrainingConfig
from fleetcast.training.inputs import CustomerTask, History, clean_history, data_fingerprint, load_task_rows

TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"
REASON_LIMIT = 300


@dataclass(frozen=True)
class FitContext:
    config: TrainingConfig
    checkpoints_dir: Path
    host: str
    versions: dict[str, str]
    staging_dir: Path | None = None  # where archives are written before the rename into checkpoints_dir
    run: str = "run"  # this run's id: its archives are `<run>/<customer>.tar.gz` below the models prefix
    # The previous fleet manifest's rows for this host's customers (training/resume.py).
    previous: Mapping[str, manifest.ManifestEntry] = field(default_factory=dict)


@dataclass
class CustomerResult:
    customer: str
    status: str
    rows: int = 0
    dropped_rows: int = 0
    seconds: float = 0.0
    fit_seconds: float = 0.0
    metrics: dict[str, Any] | None = None
    reason: str = ""
    fit_engine: str = ""  # engine.EXACT, engine.STAN or archive.BASELINE_KIND: what made the archived model
    model: str = ""  # the chosen candidate (training/selection.py)
    cv_smape: float | None = None  # its mean sMAPE over the cross-validation folds
    runner_up: str = ""
    fits: int = 0  # model fits made for this customer (selection, holdout and the final fit)
    entry: manifest.ManifestEntry | None = None  # the version that serves the customer after this run
    extra: dict[str, Any] = field(default_factory=dict)


class CustomerError(Exception):
    """A customer that cannot be trained, with a reason a person can act on."""


@dataclass
class _Holdout:
    metrics: dict[str, Any] | None = None
    fit_seconds: float = 0.0
    note: str = ""
    outcome: engine.FitOutcome | None = None


# The cross-validation horizon when the job scores no holdout.
DEFAULT_CV_HORIZON_DAYS = 7


def _choose(
    history: History, split: evaluate.HoldoutSplit | None, config: TrainingConfig, customer: str
) -> selection.Selection:
    """The candidate to ship, chosen on the rows before the final holdout only."""
    job = config.job
    before = split.train if split is not None else history
    candidates = selection.candidate_set(
        before, config.prophet, selection.wanted_names(job), job.max_candidates
    )
    return selection.select(
        before,
        candidates,
        folds=job.cv_folds,
        horizon_days=job.holdout_days or DEFAULT_CV_HORIZON_DAYS,
        min_rows=job.min_rows,
        fit_engine=job.fit_engine,
        label=customer,
    )


def _score_holdout(
    split: evaluate.HoldoutSplit | None, config: TrainingConfig, candidate: selection.Candidate, customer: str
) -> _Holdout:
    """Fit on all but the last days and score the forecast of those days (no Prophet.predict)."""
    if split is None:
        return _Holdout()
    holdout_days = config.job.holdout_days
    if len(split.holdout) == 0 or len(split.train) < config.job.min_rows:
        return _Holdout(note=f"holdout skipped: {len(split.train)} rows before the last {holdout_days} days")
    naive = evaluate.seasonal_naive(split.train, split.holdout.ds)
    if candidate.is_baseline:  # the chosen model is the yardstick itself: nothing to fit
        return _Holdout(evaluate.holdout_metrics(split.holdout.y, naive, naive))
    if not selection.fits_on(candidate, split.train, config.job.min_rows):
        note = f"holdout skipped: too few rows for {candidate.name} before the last {holdout_days} days"
        return _Holdout(note=note)
    began = time.perf_counter()
    outcome = selection.fit_candidate(
        candidate, split.train, config.job.fit_engine, label=f"{customer} (holdout)"
    )
    fit_seconds = time.perf_counter() - began
    # The holdout's real regressor values (e.g. the temperatures that happened), as a forecast gets them.
    forecast = selection.forecast_candidate(candidate, outcome, split.train, split.holdout)
    actual = split.holdout.y
    return _Holdout(evaluate.holdout_metrics(actual, forecast, naive), fit_seconds, outcome=outcome)


@dataclass(frozen=True)
class _Shipped:
    """The model to archive: its JSON, its kind, what made it, and its compiled form (if covered)."""

    model_json: str
    kind: str
    engine_used: str
    fallback_reason: str = ""
    compiled: dict[str, Any] | None = None
    # A blend's or seasonal change's seasonal part (its metadata.json entry); model.json is its Prophet part.
    seasonal_part: dict[str, Any] | None = None


def _fit_shipped(
    history: History, candidate: selection.Candidate, config: TrainingConfig, holdout: _Holdout, customer: str
) -> _Shipped:
    """The chosen candidate fitted on every row."""
    settings = candidate.settings
    if candidate.is_baseline:
        model = baseline.fit(
            history.ds,
            history.y,
            freq=dates.infer_frequency(history.ds),
            interval_width=settings.interval_width,
            intervals=settings.uncertainty_samples > 0,  # as a Prophet model of this configuration would
        )
        return _Shipped(model.to_json(), archive.BASELINE_KIND, archive.BASELINE_KIND)
    outcome = selection.fit_candidate(
        candidate, history, config.job.fit_engine, warm_start=holdout.outcome, label=customer
    )
    model_json = outcome.to_json()
    seasonal_part = None
    freq = dates.infer_frequency(history.ds)
    intervals = settings.uncertainty_samples > 0  # as its Prophet part
    if candidate.is_blend:
        assert candidate.weights is not None  # set by selection.select
        seasonal_part = blend.fit(
            history.ds,
            history.y,
            candidate.weights,
            freq=freq,
            interval_width=settings.interval_width,
            intervals=intervals,
        ).to_dict()
    elif candidate.is_change:
        seasonal_part = seasonal_change.fit(
            history.ds,
            history.y,
            name=candidate.name,
            freq=freq,
            interval_width=settings.interval_width,
            intervals=intervals,
        ).to_dict()
    return _Shipped(
        model_json,
        candidate.kind,
        outcome.engine_used,
        outcome.fallback_reason,
        # Shipped beside model.json, so a server loads the model without parsing Prophet's JSON.
        engine.compiled_form(outcome, model_json),
        seasonal_part,
    )


def _rounded(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None  # NaN (not scored) is null in JSON


def _kept(
    customer: str, fingerprint: str, config_fingerprint: str, context: FitContext, result: CustomerResult
) -> bool:
    """True (and `result` filled in as SKIPPED) when a current version of the customer's model exists."""
    previous = context.previous.get(customer)
    if previous is not None and previous.is_current(fingerprint, config_fingerprint):
        # The version an earlier run trained keeps serving: no copy, no retrain.
        result.status, result.metrics, result.entry = SKIPPED, previous.metrics, previous
        result.model = previous.model
        return True
    # Only this run's own archives are ever in the checkpoint folder (restored after a restart).
    target = context.checkpoints_dir / archive.archive_name(customer)
    existing = archive.read_metadata_or_none(target) if target.exists() else None
    if (
        existing is None
        or existing.get("data_sha256") != fingerprint
        or existing.get("config_fingerprint") != config_fingerprint
        or existing.get("format_version") != archive.FORMAT_VERSION
    ):
        return False
    result.status, result.metrics = SKIPPED, existing.get("metrics")
    result.fit_engine = str(existing.get("fit_engine", ""))
    result.model = str(existing.get("model", ""))
    result.entry = manifest.entry_for(
        customer, context.run, fingerprint, config_fingerprint, result.model, result.metrics
    )
    return True


def train_customer(task: CustomerTask, context: FitContext) -> CustomerResult:
    began = time.perf_counter()
    result = CustomerResult(customer=task.customer, status=FAILED)
    try:
        history, result.dropped_rows = clean_history(load_task_rows(task))
        result.rows = len(history)
        fingerprint = data_fingerprint(history)
        config_fingerprint = context.config.fingerprint()
        if _kept(task.customer, fingerprint, config_fingerprint, context, result):
            return result

        if result.rows < context.config.job.min_rows:
            raise CustomerError(
                f"only {result.rows} usable rows (min_rows={context.config.job.min_rows}); "
                f"{result.dropped_rows} rows had no valid timestamp or value"
            )
        if history.ds[0] == history.ds[-1]:  # sorted: first == last means one timestamp
            raise CustomerError("all rows share one timestamp")

        select_began = time.perf_counter()
        # One split for both: selection only ever sees the rows before the final holdout.
        holdout_days = context.config.job.holdout_days
        split = evaluate.split_holdout(history, holdout_days) if holdout_days else None
        choice = _choose(history, split, context.config, task.customer)
        select_seconds = time.perf_counter() - select_began
        settings = choice.candidate.settings
        result.model, result.runner_up = choice.candidate.name, choice.runner_up
        cv_smape = choice.scores.get(choice.candidate.name, float("nan"))
        result.cv_smape = _rounded(cv_smape)
        holdout = _score_holdout(split, context.config, choice.candidate, task.customer)
        result.metrics, result.reason = holdout.metrics, holdout.note
        fit_began = time.perf_counter()
        shipped = _fit_shipped(history, choice.candidate, context.config, holdout, task.customer)
        result.fit_seconds = select_seconds + holdout.fit_seconds + (time.perf_counter() - fit_began)
        result.fit_engine = shipped.engine_used
        result.fits = choice.fits + (holdout.outcome is not None) + (not choice.candidate.is_baseline)

        metadata = {
            "customer": task.customer,
            "rows": result.rows,
            "start": dates.isoformat(history.ds[0]),
            "end": dates.isoformat(history.ds[-1]),
            "freq": dates.infer_frequency(history.ds),
            "data_sha256": fingerprint,
            "config_fingerprint": config_fingerprint,
            "prophet": settings.prophet_kwargs(),
            # What a forecast request must carry: each regressor's values at the forecast dates.
            "regressors": [] if choice.candidate.is_baseline else list(settings.regressor_names),
            "model": choice.candidate.name,
            "selection": {
                "cv_smape": {name: _rounded(score) for name, score in choice.scores.items()},
                "naive_cv_smape": _rounded(choice.naive_score),
                "folds": choice.folds,
                "runner_up": choice.runner_up,
                **({"note": choice.note} if choice.note else {}),
            },
            "metrics": result.metrics,
            "fit_seconds": round(result.fit_seconds, 4),
            "fit_engine": shipped.engine_used,
            "versions": context.versions,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": context.host,
        }
        if shipped.seasonal_part is not None:
            metadata[composed.metadata_key(shipped.kind)] = shipped.seasonal_part
        if choice.candidate.is_blend:
            metadata["selection"]["blend_of"] = choice.candidate.prophet_part
        if shipped.fallback_reason:
            metadata["fit_fallback_reason"] = shipped.fallback_reason
            fallback = f"fit fell back to Stan: {shipped.fallback_reason}"
            result.reason = f"{result.reason}; {fallback}" if result.reason else fallback
        archive.write_archive(
            context.checkpoints_dir,
            task.customer,
            shipped.model_json,
            metadata,
            context.staging_dir,
            kind=shipped.kind,
            compiled=shipped.compiled,
        )
        result.entry = manifest.entry_for(
            task.customer, context.run, fingerprint, config_fingerprint, result.model, result.metrics
        )
        result.status = TRAINED
    except Exception as exc:  # any failure is this customer's alone
        result.status = FAILED
        message = str(exc) if isinstance(exc, CustomerError) else f"{type(exc).__name__}: {exc}"
        result.reason = " ".join(message.split())[:REASON_LIMIT]
    finally:
        result.seconds = time.perf_counter() - began
    return result
