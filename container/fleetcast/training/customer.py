"""Training one customer: read, clean, resume check, holdout score, fit on everything, write the archive.

Runs inside a worker process. Every failure is caught here and returned as data, so one broken customer
never takes the fleet down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcast.model import archive, dates, prophet_model
from fleetcast.training import evaluate
from fleetcast.training.config import TrainingConfig
from fleetcast.training.inputs import CustomerTask, clean_history, data_fingerprint, load_task_frame

TRAINED, SKIPPED, FAILED = "trained", "skipped", "failed"
REASON_LIMIT = 300


@dataclass(frozen=True)
class FitContext:
    config: TrainingConfig
    checkpoints_dir: Path
    host: str
    versions: dict[str, str]
    staging_dir: Path | None = None  # where archives are written before the rename into checkpoints_dir


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
    fit_engine: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class CustomerError(Exception):
    """A customer that cannot be trained, with a reason a person can act on."""


def _metrics_on_holdout(history, config: TrainingConfig) -> tuple[dict[str, Any] | None, float, str]:
    holdout_days = config.job.holdout_days
    if holdout_days == 0:
        return None, 0.0, ""
    split = evaluate.split_holdout(history, holdout_days)
    if split.holdout.empty or len(split.train) < config.job.min_rows:
        return None, 0.0, f"holdout skipped: {len(split.train)} rows before the last {holdout_days} days"
    began = time.perf_counter()
    model = prophet_model.fit_prophet(split.train, config.prophet)
    fit_seconds = time.perf_counter() - began
    forecast = prophet_model.predict_values(model, split.holdout["ds"])
    naive = evaluate.seasonal_naive(split.train, split.holdout["ds"])
    actual = split.holdout["y"].to_numpy(dtype=float)
    return evaluate.holdout_metrics(actual, forecast, naive), fit_seconds, ""


def train_customer(task: CustomerTask, context: FitContext) -> CustomerResult:
    began = time.perf_counter()
    result = CustomerResult(customer=task.customer, status=FAILED)
    try:
        history, result.dropped_rows = clean_history(load_task_frame(task))
        result.rows = len(history)
        fingerprint = data_fingerprint(history)
        config_fingerprint = context.config.fingerprint()
        target = context.checkpoints_dir / archive.archive_name(task.customer)

        existing = archive.read_metadata_or_none(target) if target.exists() else None
        if (
            existing is not None
            and existing.get("data_sha256") == fingerprint
            and existing.get("config_fingerprint") == config_fingerprint
            and existing.get("format_version") == archive.FORMAT_VERSION
        ):
            result.status, result.metrics = SKIPPED, existing.get("metrics")
            return result

        if result.rows < context.config.job.min_rows:
            raise CustomerError(
                f"only {result.rows} usable rows (min_rows={context.config.job.min_rows}); "
                f"{result.dropped_rows} rows had no valid timestamp or value"
            )
        if history["ds"].nunique() < 2:
            raise CustomerError("all rows share one timestamp")

        result.metrics, holdout_fit, result.reason = _metrics_on_holdout(history, context.config)
        fit_began = time.perf_counter()
        model = prophet_model.fit_prophet(history, context.config.prophet)
        result.fit_seconds = holdout_fit + (time.perf_counter() - fit_began)

        metadata = {
            "customer": task.customer,
            "rows": result.rows,
            "start": history["ds"].iloc[0].isoformat(),
            "end": history["ds"].iloc[-1].isoformat(),
            "freq": dates.infer_frequency(history["ds"]),
            "data_sha256": fingerprint,
            "config_fingerprint": config_fingerprint,
            "prophet": context.config.prophet.prophet_kwargs(),
            "metrics": result.metrics,
            "fit_seconds": round(result.fit_seconds, 4),
            "versions": context.versions,
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": context.host,
        }
        archive.write_archive(
            context.checkpoints_dir,
            task.customer,
            prophet_model.model_to_json(model),
            metadata,
            context.staging_dir,
        )
        result.status = TRAINED
    except Exception as exc:  # any failure is this customer's alone
        result.status = FAILED
        message = str(exc) if isinstance(exc, CustomerError) else f"{type(exc).__name__}: {exc}"
        result.reason = " ".join(message.split())[:REASON_LIMIT]
    finally:
        result.seconds = time.perf_counter() - began
    return result
