"""The training job's configuration: SageMaker's JSON files and string hyperparameters, validated.

SageMaker passes every hyperparameter as a string. Each known key has a parser that turns the string
into a typed value or raises ConfigError naming the key; an unknown key is an error too, so a typo never
silently trains with defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleetcast.model.settings import PROPHET_PARSERS as _PROPHET_PARSERS
from fleetcast.model.settings import ProphetSettings, float_in, integer_in, one_of
from fleetcast.paths import DEFAULT_CHECKPOINT_LOCAL_PATH, SHARDED_BY_S3_KEY, SageMakerPaths

# Keys SageMaker itself (or its SDK) may add; they are not ours to validate.
RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


class ConfigError(ValueError):
    """Invalid job configuration; the message is what the user sees as the job's FailureReason."""


@dataclass(frozen=True)
class JobSettings:
    """How the job runs; none of it changes a fitted model."""

    channel: str = "train"
    workers: int = 0  # 0: one per CPU
    holdout_days: int = 7
    max_failure_rate: float = 0.05
    min_rows: int = 30
    progress_seconds: float = 5.0
    # auto: the in-process exact fit where it covers the configuration, Stan otherwise; stan: always Stan.
    fit_engine: str = "auto"
    # 0: sized from the instance's memory when the job starts.
    max_rows_per_customer: int = 0
    # auto: every candidate of training/selection.py; off: the configured model only; or candidate names.
    selection: str = "auto"
    max_candidates: int = 4
    cv_folds: int = 3
    # Where the per-customer archives are delivered (see MODEL_OUTPUTS).
    model_output: str = "auto"
    # The run's id, its models' folder below the models prefix; "" means the job's name (training/run.py).
    run_id: str = ""


@dataclass(frozen=True)
class TrainingConfig:
    prophet: ProphetSettings = field(default_factory=ProphetSettings)
    job: JobSettings = field(default_factory=JobSettings)

    def fingerprint(self) -> str:
        """Hash of what a checkpoint depends on: model settings and the holdout that scored it."""
        payload = {
            "prophet": asdict(self.prophet),
            "holdout_days": self.job.holdout_days,
            "fit_engine": self.job.fit_engine,
            "selection": self.job.selection,
            "max_candidates": self.job.max_candidates,
            "cv_folds": self.job.cv_folds,
        }
        if self.job.selection != SELECT_CONFIGURED:
            # A model chosen among candidates is stale once the candidates change: resume retrains it.
            payload["candidates"] = [CANDIDATE_NAMES, CANDIDATES_VERSION]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _channel(text: str) -> str:
    value = text.strip()
    if not value or "/" in value or value in (".", ".."):
        raise ValueError("must be a channel name like 'train'")
    return value


# The values of `selection` (training/selection.py defines and describes each candidate).
SELECT_ALL, SELECT_CONFIGURED = "auto", "off"
CANDIDATE_NAMES = (
    "configured",
    "daily-by-day-type",
    "yearly-low",
    "weekly-change",
    "flexible-trend",
    "multiplicative",
    "blend",
    "naive",
)
# Bumped when a candidate's definition changes (not only the list above), so resume retrains the models
# chosen among the older candidates instead of keeping them.
CANDIDATES_VERSION = 3  # 2: day-type order 12, seven blend weightings, the parsimony rule; 3: weekly-change


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def run_id(text: str) -> str:
    """A run id: one path segment below the models prefix (a SageMaker job name always is one)."""
    value = text.strip()
    if not RUN_ID_PATTERN.fullmatch(value):
        raise ValueError("must be 1-128 of A-Z a-z 0-9 _ - starting with a letter or digit")
    return value


def _run_id_setting(text: str) -> str:
    """The `run_id` hyperparameter: empty (its default) means the job's name."""
    return run_id(text) if text.strip() else ""


def _selection(text: str) -> str:
    """auto, off, or candidate names, normalised to `a,b` (lower case, no spaces)."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names in ([SELECT_ALL], [SELECT_CONFIGURED]):
        return names[0]
    unknown = [name for name in names if name not in CANDIDATE_NAMES]
    if not names or unknown:
        raise ValueError(f"must be auto, off or a comma list of {', '.join(CANDIDATE_NAMES)}")
    return ",".join(names)


# auto: the checkpoint folder when the job has a CheckpointConfig, and also model.tar.gz when it has none;
# checkpoints: only the checkpoint folder; both: always both. There is no "model only": archives are always
# written to the checkpoint folder first (it is what a restarted job resumes from), so with a
# CheckpointConfig they reach its S3 prefix whatever this says.
MODEL_OUTPUTS = ("auto", "checkpoints", "both")

_JOB_PARSERS: dict[str, Callable[[str], Any]] = {
    "channel": _channel,
    "workers": integer_in(0, 1024),
    "holdout_days": integer_in(0, 3650),
    "max_failure_rate": float_in(0.0, 1.0),
    "min_rows": integer_in(2),
    "progress_seconds": float_in(0.0, 3600.0, low_open=True),
    "fit_engine": one_of("auto", "stan"),
    "max_rows_per_customer": integer_in(0, 10**9),
    "selection": _selection,
    "max_candidates": integer_in(1, 20),
    "cv_folds": integer_in(1, 20),
    "model_output": one_of(*MODEL_OUTPUTS),
    "run_id": _run_id_setting,
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


# inputdataconfig.json's S3DistributionType values.


def host_of_customer(customer: str, hosts: Sequence[str]) -> str:
    """The one host that trains `customer` when every host sees the whole channel.

    A hash of the id (sha256: the same on every host, unlike Python's salted hash()) over the sorted host
    list, so each host decides alone, and the same customer always lands on the same host.
    """
    digest = hashlib.sha256(customer.encode()).digest()
    ordered = sorted(hosts)
    return ordered[int.from_bytes(digest[:8], "big") % len(ordered)]


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str
    hosts: list[str]

    @property
    def host_index(self) -> int:
        return self.hosts.index(self.current_host)

    def shares_channel(self, distribution: str | None) -> bool:
        """True when several hosts receive the same full channel and must split its customers themselves:
        S3DistributionType FullyReplicated, or unspecified (SageMaker's default, and all that SDK local
        mode writes). ShardedByS3Key input is already split by SageMaker and is used as given."""
        return len(self.hosts) > 1 and distribution != SHARDED_BY_S3_KEY

    def owns(self, customer: str) -> bool:
        return host_of_customer(customer, self.hosts) == self.current_host


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


@dataclass(frozen=True)
class CheckpointConfig:
    """What a training container can know about its job's CheckpointConfig.

    The API has `CheckpointConfig.S3Uri` and `.LocalPath` (default /opt/ml/checkpoints), and AWS documents no
    environment variable or config file that tells the container about them: the platform itself sets only
    TRAINING_JOB_NAME and TRAINING_JOB_ARN (DescribeTrainingJob would tell, but needs an IAM permission
    and a network that a network-isolated job lacks). What there is: a job with a CheckpointConfig gets
    /opt/ml/input/config/checkpointconfig.json holding its `LocalPath`. That file is undocumented, but AWS's
    own sagemaker-debugger reads it (smdebug/core/state_store.py, key "LocalPath"), and the public logs of
    jobs without checkpoints show its "checkpoint config file ... does not exist" line. SDK local mode writes
    no such file, mounts no checkpoints folder and refuses checkpoint_s3_uri. So: no file, no checkpoints.
    """

    configured: bool
    local_path: Path | None = None  # where SageMaker syncs from, relocated under the paths' base

    def covers(self, checkpoints_dir: Path) -> bool:
        """True when what `train` writes to `checkpoints_dir` is synced to the checkpoint S3 prefix."""
        if not self.configured or self.local_path is None:
            return False
        return os.path.normpath(self.local_path) == os.path.normpath(checkpoints_dir)


def read_checkpoint_config(paths: SageMakerPaths) -> CheckpointConfig:
    raw = _read_json(paths.checkpoint_config_file, required=False)
    if raw is None:
        return CheckpointConfig(configured=False)
    if not isinstance(raw, dict):
        raise ConfigError(f"{paths.checkpoint_config_file} must hold a JSON object")
    local_path = str(raw.get("LocalPath") or DEFAULT_CHECKPOINT_LOCAL_PATH)
    return CheckpointConfig(configured=True, local_path=paths.in_container(local_path))


def cpu_count() -> int:
    """CPUs this process may use (honours affinity/cgroup-restricted sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
