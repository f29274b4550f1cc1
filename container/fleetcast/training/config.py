"""The training job's configuration: SageMaker's JSON files and string hyperparameters, validated.

SageMaker passes every hyperparameter as a string. Each known key has a parser that turns the string
into a typed value or raises ConfigError naming the key; an unknown key is an error too, so a typo never
silently trains with defaults.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleetcast.paths import SageMakerPaths

# Keys SageMaker itself (or its SDK) may add; they are not ours to validate.
RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


class ConfigError(ValueError):
    """Invalid job configuration; the message is what the user sees as the job's FailureReason."""


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _float(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text.strip())
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high or math.isnan(value):
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            raise ValueError(f"must be in {lo}{low:g}, {high:g}{hi}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _seasonality(text: str) -> str | bool | int:
    """Prophet's seasonality switch: auto, true, false, or a Fourier order."""
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if value in ("true", "false"):
        return value == "true"
    order = int(value)
    if order < 1:
        raise ValueError("must be auto, true, false or a positive Fourier order")
    return order


@dataclass(frozen=True)
class ProphetSettings:
    """Everything that changes the fitted model. Defaults suit daily energy data."""

    growth: str = "linear"
    seasonality_mode: str = "additive"
    yearly_seasonality: str | bool | int = "auto"
    weekly_seasonality: str | bool | int = "auto"
    daily_seasonality: str | bool | int = "auto"
    changepoint_prior_scale: float = 0.05
    seasonality_prior_scale: float = 10.0
    n_changepoints: int = 25
    changepoint_range: float = 0.8
    interval_width: float = 0.8
    uncertainty_samples: int = 1000

    def prophet_kwargs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobSettings:
    """How the job runs; none of it changes a fitted model."""

    channel: str = "train"
    workers: int = 0  # 0: one per CPU
    holdout_days: int = 7
    max_failure_rate: float = 0.05
    min_rows: int = 30
    progress_seconds: float = 5.0


@dataclass(frozen=True)
class TrainingConfig:
    prophet: ProphetSettings = field(default_factory=ProphetSettings)
    job: JobSettings = field(default_factory=JobSettings)

    def fingerprint(self) -> str:
        """Hash of what a checkpoint depends on: model settings and the holdout that scored it."""
        payload = {"prophet": asdict(self.prophet), "holdout_days": self.job.holdout_days}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


_PROPHET_PARSERS: dict[str, Callable[[str], Any]] = {
    "growth": _choice("linear", "flat"),
    "seasonality_mode": _choice("additive", "multiplicative"),
    "yearly_seasonality": _seasonality,
    "weekly_seasonality": _seasonality,
    "daily_seasonality": _seasonality,
    "changepoint_prior_scale": _float(0.0, 1e6, low_open=True),
    "seasonality_prior_scale": _float(0.0, 1e6, low_open=True),
    "n_changepoints": _int(0, 1000),
    "changepoint_range": _float(0.0, 1.0, low_open=True),
    "interval_width": _float(0.0, 1.0, low_open=True, high_open=True),
    "uncertainty_samples": _int(0, 100_000),
}


def _channel(text: str) -> str:
    value = text.strip()
    if not value or "/" in value or value in (".", ".."):
        raise ValueError("must be a channel name like 'train'")
    return value


_JOB_PARSERS: dict[str, Callable[[str], Any]] = {
    "channel": _channel,
    "workers": _int(0, 1024),
    "holdout_days": _int(0, 3650),
    "max_failure_rate": _float(0.0, 1.0),
    "min_rows": _int(2),
    "progress_seconds": _float(0.0, 3600.0, low_open=True),
}

HYPERPARAMETERS = sorted([*_PROPHET_PARSERS, *_JOB_PARSERS])


def parse_hyperparameters(raw: Mapping[str, Any]) -> TrainingConfig:
    """Validate SageMaker's string hyperparameters into a TrainingConfig."""
    prophet: dict[str, Any] = {}
    job: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(RESERVED_PREFIXES):
            continue
        parser = _PROPHET_PARSERS.get(key) or _JOB_PARSERS.get(key)
        if parser is None:
            raise ConfigError(f"unknown hyperparameter {key!r}; known: {', '.join(HYPERPARAMETERS)}")
        # The API only allows strings; a number here means a hand-written file, so accept its text.
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            parsed = parser(text)
        except ValueError as exc:
            reason = str(exc) if "must" in str(exc) else "is not a valid value"
            raise ConfigError(f"hyperparameter {key}={text!r}: {reason}") from None
        (prophet if key in _PROPHET_PARSERS else job)[key] = parsed
    return TrainingConfig(prophet=ProphetSettings(**prophet), job=JobSettings(**job))


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str
    hosts: list[str]

    @property
    def host_index(self) -> int:
        return self.hosts.index(self.current_host)


def _read_json(path: Path, *, required: bool) -> Any:
    if not path.exists():
        if required:
            raise ConfigError(f"missing {path}")
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def read_hyperparameters(paths: SageMakerPaths) -> TrainingConfig:
    raw = _read_json(paths.hyperparameters_file, required=False) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{paths.hyperparameters_file} must hold a JSON object")
    return parse_hyperparameters(raw)


def read_resource_config(paths: SageMakerPaths) -> ResourceConfig:
    """The cluster layout; a single host named after this machine when the file is absent."""
    raw = _read_json(paths.resource_config_file, required=False)
    if raw is None:
        return ResourceConfig(current_host="algo-1", hosts=["algo-1"])
    try:
        hosts = sorted(str(h) for h in raw["hosts"])
        current = str(raw["current_host"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{paths.resource_config_file} lacks current_host/hosts ({exc})") from None
    if current not in hosts:
        raise ConfigError(f"{paths.resource_config_file}: current_host {current!r} is not in hosts {hosts}")
    return ResourceConfig(current_host=current, hosts=hosts)


def read_input_data_config(paths: SageMakerPaths) -> dict[str, dict[str, Any]]:
    raw = _read_json(paths.input_data_config_file, required=False) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{paths.input_data_config_file} must hold a JSON object")
    return raw


def cpu_count() -> int:
    """CPUs this process may use (honours affinity/cgroup-restricted sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
