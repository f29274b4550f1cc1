"""`status` and `wait`: one look at (or polling of) a job, a pipeline execution or an endpoint.

`wait` prints a progress line whenever the state changes (and a heartbeat while it does not), prints the
FailureReason when the resource fails, and returns non-zero unless it reached its success state.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from launch.common import (
    LaunchError,
    add_common_arguments,
    aws_from_args,
    base_name,
    call,
    endpoint_from_args,
    is_version_of,
    job_stem,
)

EXIT_FAILED = 1
EXIT_TIMEOUT = 124  # what coreutils `timeout` uses


@dataclass(frozen=True)
class Kind:
    """How one resource type is described and which of its states end a wait."""

    name: str
    describe: str
    name_member: str
    status_member: str
    success: frozenset[str]
    failure: frozenset[str]
    list_operation: str | None = None
    list_member: str | None = None
    step: str | None = None  # the job name part launch uses: fleetcast-<prefix>-<step>-<timestamp>


def processing_kind(name: str, step: str) -> Kind:
    """A Processing job's kind: `process` (the split) and `forecast` are described, listed, judged alike."""
    return Kind(
        name,
        "DescribeProcessingJob",
        "ProcessingJobName",
        "ProcessingJobStatus",
        frozenset({"Completed"}),
        frozenset({"Failed", "Stopped"}),
        "ListProcessingJobs",
        "ProcessingJobSummaries",
        step,
    )


KINDS = {
    "processing": processing_kind("processing", "split"),
    "training": Kind(
        "training",
        "DescribeTrainingJob",
        "TrainingJobName",
        "TrainingJobStatus",
        frozenset({"Completed"}),
        frozenset({"Failed", "Stopped"}),
        "ListTrainingJobs",
        "TrainingJobSummaries",
        "train",
    ),
    "forecast": processing_kind("forecast", "forecast"),
    "pipeline": Kind(
        "pipeline",
        "DescribePipelineExecution",
        "PipelineExecutionArn",
        "PipelineExecutionStatus",
        frozenset({"Succeeded"}),
        frozenset({"Failed", "Stopped"}),
    ),
    "endpoint": Kind(
        "endpoint",
        "DescribeEndpoint",
        "EndpointName",
        "EndpointStatus",
        frozenset({"InService"}),
        frozenset({"Failed", "OutOfService", "Deleting", "UpdateRollbackFailed"}),
    ),
}


def describe(client: Any, kind: Kind, name: str) -> dict[str, Any]:
    return call(client, "sagemaker", kind.describe, {kind.name_member: name})


def pipeline_steps(client: Any, arn: str) -> list[dict[str, Any]]:
    """The execution's steps, oldest first; [] where the service (or a stand-in) cannot list them."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = call(client, "sagemaker", "ListPipelineExecutionSteps", {"PipelineExecutionArn": arn})
    except (BotoCoreError, ClientError):
        return []
    return list(reversed(found.get("PipelineExecutionSteps", [])))  # the API lists the newest first


def latest_pipeline_execution(client: Any, prefix: str) -> str:
    """The newest execution of the pipeline `launch pipeline` created for `prefix`."""
    name = base_name(prefix)
    params = {"PipelineName": name, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 1}
    found = call(client, "sagemaker", "ListPipelineExecutions", params).get("PipelineExecutionSummaries", [])
    if not found:
        raise LaunchError(f"pipeline {name} has no execution; pass an execution ARN")
    return found[0]["PipelineExecutionArn"]


def latest_job_name(client: Any, kind: Kind, prefix: str) -> str:
    """The newest job launch started for `prefix` (named `fleetcast-<prefix>-<step>-<timestamp>`)."""
    if kind.list_operation is None or kind.step is None:
        raise LaunchError(f"{kind.name} needs a name")
    stem = job_stem(prefix, kind.step)
    params = {"NameContains": stem, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100}
    found = call(client, "sagemaker", kind.list_operation, params)[kind.list_member]
    # NameContains also matches other prefixes that extend this one (demo -> demo2): keep exact versions.
    names = [job[kind.name_member] for job in found if is_version_of(job[kind.name_member], stem)]
    if not names:
        raise LaunchError(f"no {kind.name} job named {stem}-<timestamp> in the newest 100; pass its name")
    return names[0]


def state_text(kind: Kind, description: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> str:
    """A one-line summary of where the resource is, in SageMaker's own words."""
    status = description[kind.status_member]
    parts = [status]
    if steps:
        parts.append("- " + ", ".join(f"{s.get('StepName')} {s.get('StepStatus')}" for s in steps))
    if kind.name == "training":
        secondary = description.get("SecondaryStatus")
        transitions = description.get("SecondaryStatusTransitions") or []
        message = transitions[-1].get("StatusMessage") if transitions else None
        if secondary and secondary != status:
            parts.append(f"/ {secondary}")
        if message:
            parts.append(f"- {message}")
    return " ".join(parts)


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def report_outcome(
    kind: Kind, name: str, description: dict[str, Any], out: TextIO, steps: list[dict[str, Any]] | None = None
) -> int:
    """Print what finished (metrics, billing, failure reason); return the exit code for that state."""
    status = description[kind.status_member]
    if status in kind.failure:
        reason = description.get("FailureReason") or description.get("ExitMessage") or "(no reason given)"
        print(f"{kind.name} {name} {status}: {reason}", file=out, flush=True)
        for step in steps or []:
            if step.get("FailureReason"):
                print(
                    f"  step {step.get('StepName')} {step.get('StepStatus')}: {step['FailureReason']}",
                    file=out,
                )
        return EXIT_FAILED
    metrics = description.get("FinalMetricDataList") or []
    if metrics:
        shown = ", ".join(f"{m['MetricName']}={m['Value']:g}" for m in metrics)
        print(f"final metrics: {shown}", file=out)
    billable, seconds = description.get("BillableTimeInSeconds"), description.get("TrainingTimeInSeconds")
    if billable and seconds:
        print(f"billable {billable}s of {seconds}s training time", file=out)
    if kind.name == "training" and description.get("CheckpointConfig"):
        print(f"models: {description['CheckpointConfig']['S3Uri']}", file=out)
    print(f"{kind.name} {name} {status}", file=out, flush=True)
    return 0


def wait_for(
    client: Any,
    kind: Kind,
    name: str,
    *,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = None,
    heartbeat_seconds: float = 300.0,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Poll until `name` reaches a success or failure state; 0 on success, non-zero otherwise."""
    out = out or sys.stdout
    started = clock()
    last_text, last_print = None, started
    while True:
        description = describe(client, kind, name)
        status = description[kind.status_member]
        steps = pipeline_steps(client, name) if kind.name == "pipeline" else None
        now = clock()
        text = state_text(kind, description, steps)
        if text != last_text or now - last_print >= heartbeat_seconds:
            print(f"[{_elapsed(now - started):>9}] {kind.name} {name}: {text}", file=out, flush=True)
            last_text, last_print = text, now
        if status in kind.success or status in kind.failure:
            return report_outcome(kind, name, description, out, steps)
        if timeout_seconds is not None and now - started >= timeout_seconds:
            print(f"gave up after {_elapsed(now - started)}: {kind.name} {name} is still {status}", file=out)
            return EXIT_TIMEOUT
        sleep(poll_seconds)


def show_status(client: Any, kind: Kind, name: str, out: TextIO | None = None) -> int:
    """One describe: the state line; 0 unless the resource has failed."""
    out = out or sys.stdout
    description = describe(client, kind, name)
    steps = pipeline_steps(client, name) if kind.name == "pipeline" else None
    created = description.get("CreationTime")
    age = ""
    if isinstance(created, dt.datetime):
        age = f" (created {created.isoformat(timespec='seconds')})"
    print(f"{kind.name} {name}: {state_text(kind, description, steps)}{age}", file=out)
    status = description[kind.status_member]
    if status in kind.success or status in kind.failure:
        return report_outcome(kind, name, description, out, steps)
    return 0


def resolve_name(client: Any, kind: Kind, args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    if kind.name == "endpoint":
        return endpoint_from_args(args)
    if kind.name == "pipeline":
        return latest_pipeline_execution(client, args.prefix or "")
    return latest_job_name(client, kind, args.prefix or "")


def _add(sub: argparse._SubParsersAction, command: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(command, help=help_text)
    p.add_argument("kind", choices=sorted(KINDS), help="what to look at")
    p.add_argument(
        "name",
        nargs="?",
        help="its name, or a pipeline execution's ARN (default: the endpoint of --prefix, the newest job or "
        "pipeline execution of --prefix)",
    )
    add_common_arguments(p)
    return p


def add_parsers(sub: argparse._SubParsersAction) -> None:
    status = _add(sub, "status", "show a job's or endpoint's state (non-zero exit if it failed)")

    def run_status(args: argparse.Namespace) -> int:
        if args.dry_run:
            raise LaunchError("status only reads; --dry-run has nothing to print")
        client = aws_from_args(args).client("sagemaker")
        kind = KINDS[args.kind]
        return show_status(client, kind, resolve_name(client, kind, args))

    status.set_defaults(run=run_status)

    wait = _add(sub, "wait", "poll until a job completes or an endpoint is InService")
    wait.add_argument("--poll-seconds", type=float, default=30.0)
    wait.add_argument("--timeout-seconds", type=float, default=None, help="give up (exit 124) after this")

    def run_wait(args: argparse.Namespace) -> int:
        if args.dry_run:
            raise LaunchError("wait only reads; --dry-run has nothing to print")
        client = aws_from_args(args).client("sagemaker")
        kind = KINDS[args.kind]
        return wait_for(
            client,
            kind,
            resolve_name(client, kind, args),
            poll_seconds=args.poll_seconds,
            timeout_seconds=args.timeout_seconds,
        )

    wait.set_defaults(run=run_wait)
