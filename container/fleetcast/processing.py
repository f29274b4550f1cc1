"""What SageMaker tells a Processing container, and what the container tells it back.

In, under /opt/ml/config (paths.py spells the files): `resourceconfig.json`, which instance this is
(`current_host`) among `hosts`; `processingjobconfig.json`, the job's CreateProcessingJob request
(ProcessingInputs with their LocalPath and S3DataDistributionType, ...). Both are described in AWS's
"Build Your Own Processing Container" guide. Out: `/opt/ml/output/message`, whose first 1,024 characters
DescribeProcessingJob shows as the job's ExitMessage.

Outside a Processing job (a laptop, a test) the files are absent: one instance, no request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.paths import FULLY_REPLICATED, SageMakerPaths

EXIT_MESSAGE_LIMIT = 1024


class ProcessingConfigError(ValueError):
    """A config file the platform wrote cannot be read: the message names it."""


@dataclass(frozen=True)
class ProcessingCluster:
    """The job's instances: this one's name and all of them, sorted. `host` None: not in a job."""

    host: str | None = None
    hosts: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return max(len(self.hosts), 1)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProcessingConfigError(f"cannot read the Processing job's {path}: {exc}") from None


def read_processing_cluster(paths: SageMakerPaths) -> ProcessingCluster:
    """This instance and its peers, from resourceconfig.json; a lone instance when the file is absent."""
    path = paths.processing_resource_config_file
    if not path.is_file():
        return ProcessingCluster()
    config = _read_json(path)
    try:
        host = str(config["current_host"])
        hosts = tuple(sorted(str(h) for h in config["hosts"]))
    except (KeyError, TypeError) as exc:
        raise ProcessingConfigError(f"{path} lacks current_host/hosts ({exc})") from None
    if host not in hosts:
        raise ProcessingConfigError(f"{path}: current_host {host!r} is not in hosts {list(hosts)}")
    return ProcessingCluster(host=host, hosts=hosts)


def read_processing_inputs(paths: SageMakerPaths) -> list[dict[str, Any]]:
    """The job's ProcessingInputs, from processingjobconfig.json; none when the file is absent."""
    path = paths.processing_job_config_file
    if not path.is_file():
        return []
    job = _read_json(path)
    inputs = job.get("ProcessingInputs") if isinstance(job, dict) else None
    return [spec for spec in inputs or [] if isinstance(spec, dict)]


def input_distributions(paths: SageMakerPaths, inputs: Sequence[Path]) -> set[str]:
    """The S3DataDistributionType of every ProcessingInput whose LocalPath holds or lies in an input."""
    found: set[str] = set()
    for spec in read_processing_inputs(paths):
        source = spec.get("S3Input") or spec.get("DatasetDefinition") or {}
        local = source.get("LocalPath")
        if not local:
            continue
        where = paths.in_container(local).resolve()
        for path in inputs:
            given = path.resolve()
            if given == where or where in given.parents or given in where.parents:
                kind = source.get("S3DataDistributionType") or source.get("DataDistributionType")
                found.add(kind or FULLY_REPLICATED)  # SageMaker's default
    return found


def write_exit_message(paths: SageMakerPaths, message: str) -> None:
    """Tell DescribeProcessingJob why the job failed; a no-op outside a container (no /opt/ml)."""
    if not paths.base.is_dir():
        return
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.processing_message_file.write_text(message[:EXIT_MESSAGE_LIMIT], encoding="utf-8")
    except OSError:
        pass  # the job fails with its exit code either way; the log has the message
