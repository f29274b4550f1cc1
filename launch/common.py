"""What every launch command shares: the AWS session and clients, the S3 layout under --prefix, resource
names, request validation against botocore's service model, and the send-or-print step (--dry-run).

Requests are plain dicts shaped exactly like the API's input. Each one goes through `Aws.send`, which
validates it against the operation's input shape (the same model boto3 serialises from) and then either
prints it (--dry-run) or sends it. boto3 itself checks only types and required members, and moto checks
nothing, so enums, name patterns and ranges are checked here, where a bad value is cheap to fix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import functools
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcast.model.manifest import MANIFEST_NAME
from fleetcast.paths import DEFAULT_BASE_DIR, SageMakerPaths

# boto3 is imported lazily: `python -m launch --help` and --dry-run stay fast.


class LaunchError(Exception):
    """A problem the user can fix (bad flag, missing region, invalid request); printed without a traceback."""


class InvalidRequestError(LaunchError):
    def __init__(self, operation: str, problems: list[str]) -> None:
        self.operation = operation
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{operation} request is invalid (checked against botocore's service model):\n{lines}"
        )


# ---------------------------------------------------------------------------------------------------------
# The S3 layout under the prefix and resource names


@dataclass(frozen=True)
class Layout:
    """Where everything lives: s3://bucket/prefix/{raw,customers,models,output,reports}/.

    `models/` is the multi-model endpoint's ModelDataUrl. Each training run's checkpoint URI is its own
    folder `models/<run>/` (one <customer>.tar.gz per model it trained), and `models/manifest.csv.gz` says
    which version serves each customer (fleetcast.model.manifest), so training output is servable by name.
    """

    bucket: str
    prefix: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise LaunchError(f"--bucket {self.bucket!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def key(self, area: str, name: str = "") -> str:
        parts = [p for p in (self.prefix, area) if p]
        return "/".join(parts) + "/" + name

    def uri(self, area: str, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(area, name)}"

    @property
    def raw(self) -> str:
        return self.uri("raw")

    @property
    def customers(self) -> str:
        return self.uri("customers")

    @property
    def models(self) -> str:
        return self.uri("models")

    def run_models(self, run: str) -> str:
        """A training run's folder below models/: its checkpoint prefix, where its archives are written."""
        return self.uri("models", f"{run}/")

    @property
    def output(self) -> str:
        return self.uri("output")

    @property
    def split_reports(self) -> str:
        """The Processing step's own reports (summary, renamed ids): apart from customers/, the channel."""
        return self.uri("reports", "split/")


NAME_MAX = 63  # SageMaker job, model, endpoint config and endpoint names


def sanitize_name(text: str) -> str:
    """Turn free text (e.g. a prefix like 'team/fleet_v2') into a SageMaker-legal name fragment."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", text)).strip("-")


def base_name(prefix: str) -> str:
    """The stem every resource of one prefix shares, so names say which data they belong to."""
    fragment = sanitize_name(prefix)
    return f"fleetcast-{fragment}" if fragment else "fleetcast"


def timestamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")


STAMP_LENGTH = len("20260101-000000")


def version_stem(stem: str) -> str:
    """`stem` made legal and short enough to take a timestamp within 63 characters."""
    return sanitize_name(stem)[: NAME_MAX - STAMP_LENGTH - 1].rstrip("-")


def unique_name(stem: str, now: dt.datetime | None = None) -> str:
    """`<stem>-<UTC timestamp>`, cut to 63 characters without ending on a dash."""
    return f"{version_stem(stem)}-{timestamp(now)}"


def job_stem(prefix: str, step: str) -> str:
    """What a job name starts with before its timestamp: fleetcast-<prefix>-<split|train>."""
    return version_stem(f"{base_name(prefix)}-{step}")


def is_version_of(name: str, stem: str) -> bool:
    """True for the `<stem>-<timestamp>` names unique_name gives, not for a longer stem (demo2 vs demo)."""
    return re.fullmatch(re.escape(version_stem(stem)) + r"-\d{8}-\d{6}", name) is not None


def parse_key_values(pairs: Iterable[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LaunchError(f"{flag} expects KEY=VALUE, got {pair!r}")
        result[key.strip()] = value
    return result


# ---------------------------------------------------------------------------------------------------------
# Jobs (`process`, `forecast`, `train`): what their requests share

# Inside the job's container the platform's own /opt/ml, whatever SAGEMAKER_BASE_DIR this machine has.
JOB_PATHS = SageMakerPaths(Path(DEFAULT_BASE_DIR))
# A ProcessingInput's S3DataType: every object under a prefix, or the objects a SageMaker manifest lists.
S3_PREFIX, MANIFEST_FILE = "S3Prefix", "ManifestFile"


@dataclass(frozen=True)
class JobSpec:
    """What every job request takes from the command line: its name, image, role, data and cluster."""

    name: str
    image: str
    role: str
    layout: Layout
    instance_type: str
    instance_count: int
    volume_gb: int
    max_runtime_seconds: int


def add_job_arguments(
    parser: argparse.ArgumentParser, *, kind: str, instance_count: int, max_runtime_seconds: int
) -> None:
    """The flags of a job command; `kind` is its launch.status kind ("processing", "training")."""
    from launch.status import KINDS  # status builds on this module

    step = KINDS[kind].step
    parser.add_argument("--job-name", default=None, help=f"default: fleetcast-<prefix>-{step}-<timestamp>")
    parser.add_argument("--instance-type", default="ml.m5.xlarge", help="(default: %(default)s)")
    parser.add_argument("--instance-count", type=int, default=instance_count, help="(default: %(default)s)")
    parser.add_argument("--volume-size-gb", type=int, default=30, help="(default: %(default)s)")
    parser.add_argument(
        "--max-runtime-seconds", type=int, default=max_runtime_seconds, help="(default: %(default)s)"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the job and exit non-zero if it fails")
    add_common_arguments(parser, needs=("image", "role", "bucket", "prefix"))


def job_from_args(args: argparse.Namespace, kind: str) -> JobSpec:
    from launch.status import KINDS

    layout = layout_from_args(args)
    return JobSpec(
        name=args.job_name or unique_name(job_stem(layout.prefix, KINDS[kind].step)),
        image=args.image,
        role=args.role,
        layout=layout,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        volume_gb=args.volume_size_gb,
        max_runtime_seconds=args.max_runtime_seconds,
    )


def start_job(aws: Aws, kind: str, operation: str, request: Mapping[str, Any], summary: str) -> str:
    """Send (or, in a dry run, print) the job's Create* request; returns the job's name."""
    from launch.status import KINDS

    aws.send("sagemaker", operation, request)
    name = request[KINDS[kind].name_member]
    if not aws.dry_run:
        note(f"started {kind} job {name}: {summary}")
    return name


def has_manifest(aws: Aws, layout: Layout) -> bool:
    """Whether models/manifest.csv.gz exists (a dry run assumes it does, and says so)."""
    if aws.dry_run:
        note(f"would look for {layout.models}{MANIFEST_NAME} (the previous fleet manifest); assumed present")
        return True
    key = layout.key("models", MANIFEST_NAME)
    listing = aws.send("s3", "ListObjectsV2", {"Bucket": layout.bucket, "Prefix": key, "MaxKeys": 1})
    return any(item["Key"] == key for item in listing.get("Contents", []))


def processing_input(
    name: str, uri: Any, local_path: str, distribution: str, data_type: str = S3_PREFIX
) -> dict[str, Any]:
    """What a Processing job reads into `local_path`: the objects under an S3 prefix, or (MANIFEST_FILE)
    the objects a SageMaker manifest file lists. `uri` may be a pipeline expression."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": data_type,
            "S3InputMode": "File",
            "S3DataDistributionType": distribution,
        },
    }


def processing_output(name: str, uri: Any, local_path: str) -> dict[str, Any]:
    """One folder a Processing job uploads to S3 when it ends; `uri` may be a pipeline expression."""
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
    }


def processing_job_request(
    job: JobSpec,
    *,
    command: str,
    arguments: list[str],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A CreateProcessingJob request running `fleetcast <command> <arguments>` on the job's cluster
    (`process` and `forecast` differ only in the command and its inputs and outputs)."""
    return {
        "ProcessingJobName": job.name,
        "RoleArn": job.role,
        "AppSpecification": {
            "ImageUri": job.image,
            "ContainerEntrypoint": ["fleetcast", command],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": job.instance_count,
                "InstanceType": job.instance_type,
                "VolumeSizeInGB": job.volume_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
    }


def processing_flow(request: Mapping[str, Any]) -> str:
    """`<first input> -> <first output>` of a Processing request, for the line that says it started."""
    source = request["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    target = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    return f"{source} -> {target}"


def wait_if_asked(aws: Aws, args: argparse.Namespace, kind: str, name: str) -> int:
    """With --wait, follow the job to its end (exit non-zero if it fails); else return at once."""
    if not args.wait or aws.dry_run:
        return 0
    from launch.status import KINDS, wait_for

    return wait_for(aws.client("sagemaker"), KINDS[kind], name)


# ---------------------------------------------------------------------------------------------------------
# Validation against botocore's service model


@functools.cache
def service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def operation_name(service: str, operation: str) -> str:
    """Accept either the API name ('CreateTrainingJob') or boto3's method name ('create_training_job')."""
    model = service_model(service)
    if operation in model.operation_names:
        return operation
    for name in model.operation_names:
        if _snake(name) == operation:
            return name
    raise LaunchError(f"{service} has no operation {operation!r}")


def _snake(name: str) -> str:
    from botocore import xform_name

    return xform_name(name)


# AWS evaluates these patterns with Java's regex engine and requires the whole value to match
# (Matcher.matches), so they are applied with re.fullmatch. A few Java-only constructs are translated;
# the Unicode-category classes (\p{L} and friends, used only for tags and free-text descriptions) have no
# `re` equivalent and are left unchecked rather than approximated.
_JAVA_CLASSES = {"Print": r"\x20-\x7E", "ASCII": r"\x00-\x7F", "Alnum": "A-Za-z0-9"}
_JAVA_TO_PYTHON = [
    (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"),  # a surrogate-pair range = astral planes
    (r"\z", r"\Z"),
    # POSIX classes: spliced into a class they open ([\p{Alnum}\-]), else wrapped in one of their own.
    *((f"[\\p{{{name}}}", f"[{chars}") for name, chars in _JAVA_CLASSES.items()),
    *((f"\\p{{{name}}}", f"[{chars}]") for name, chars in _JAVA_CLASSES.items()),
]


@functools.cache
def compiled_pattern(java_pattern: str) -> re.Pattern[str] | None:
    translated = java_pattern
    for java, python in _JAVA_TO_PYTHON:
        translated = translated.replace(java, python)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "possible nested set" would mean a different regex in Python
        try:
            return re.compile(translated)
        except (re.error, FutureWarning):
            return None


def _describe_enum(value: str, shape: Any) -> str:
    allowed = list(shape.enum)
    if len(allowed) <= 12:
        return f"{value!r} is not one of {', '.join(allowed)}"
    close = difflib.get_close_matches(value, allowed, n=4, cutoff=0.6)
    hint = f" (closest: {', '.join(close)})" if close else ""
    return f"{value!r} is not one of the {len(allowed)} allowed values of {shape.name}{hint}"


def request_problems(shape: Any, value: Any, path: str) -> list[str]:
    """Every way `value` breaks `shape` (a botocore Shape), as 'Path.To.Member: what is wrong' lines."""
    check = _CHECKS.get(shape.type_name)
    # Documents and any newer shape kinds: boto3's own checks still apply when sending.
    return check(shape, value, path) if check else []


def _list_problems(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, list | tuple):
        return [f"{path}: expected a list, got {type(value).__name__}"]
    problems = _size_problems(path, len(value), shape.metadata, "items")
    for index, item in enumerate(value):
        problems += request_problems(shape.member, item, f"{path}[{index}]")
    return problems


def _map_problems(shape: Any, value: Any, path: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: expected a mapping, got {type(value).__name__}"]
    problems = _size_problems(path, len(value), shape.metadata, "entries")
    for key, item in value.items():
        problems += request_problems(shape.key, key, f"{path}[{key!r}] (key)")
        problems += request_problems(shape.value, item, f"{path}[{key!r}]")
    return problems


def _integer_problems(shape: Any, value: Any, path: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{path}: expected an integer, got {value!r}"]
    return _range_problems(path, value, shape.metadata)


def _number_problems(shape: Any, value: Any, path: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{path}: expected a number, got {value!r}"]
    return _range_problems(path, value, shape.metadata)


def _boolean_problems(shape: Any, value: Any, path: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"{path}: expected true or false, got {value!r}"]


def _blob_problems(shape: Any, value: Any, path: str) -> list[str]:
    if isinstance(value, bytes | bytearray):
        return _size_problems(path, len(value), shape.metadata, "bytes")
    if isinstance(value, str) or hasattr(value, "read"):
        return []
    return [f"{path}: expected bytes or a file, got {type(value).__name__}"]


def _timestamp_problems(shape: Any, value: Any, path: str) -> list[str]:
    ok = isinstance(value, dt.datetime | str | int | float) and not isinstance(value, bool)
    return [] if ok else [f"{path}: expected a timestamp, got {value!r}"]


def _structure_problems(shape: Any, value: Any, path: str) -> list[str]:
    where = path or "(request)"
    if not isinstance(value, Mapping):
        return [f"{where}: expected a structure, got {type(value).__name__}"]
    prefix = f"{path}." if path else ""
    problems = []
    for name in value:
        if name not in shape.members:
            close = difflib.get_close_matches(str(name), list(shape.members), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{prefix}{name}: not a member of {shape.name}{hint}")
    for name in shape.required_members:
        if name not in value:
            problems.append(f"{prefix}{name}: required member is missing")
    if shape.metadata.get("union") and len(value) != 1:
        problems.append(f"{where}: exactly one of {', '.join(shape.members)} must be set")
    for name, member_value in value.items():
        if name in shape.members:
            problems += request_problems(shape.members[name], member_value, f"{prefix}{name}")
    return problems


def _string_problems(shape: Any, value: Any, where: str) -> list[str]:
    if not isinstance(value, str):
        return [f"{where}: expected a string, got {value!r}"]
    if shape.enum and value not in shape.enum:
        return [f"{where}: {_describe_enum(value, shape)}"]
    problems = _size_problems(where, len(value), shape.metadata, "characters")
    pattern = shape.metadata.get("pattern")
    if pattern:
        compiled = compiled_pattern(pattern)
        if compiled is not None and not compiled.fullmatch(value):
            problems.append(f"{where}: {value!r} does not match pattern {pattern}")
    return problems


_CHECKS: dict[str, Callable[[Any, Any, str], list[str]]] = {
    "structure": _structure_problems,
    "list": _list_problems,
    "map": _map_problems,
    "string": _string_problems,
    "integer": _integer_problems,
    "long": _integer_problems,
    "float": _number_problems,
    "double": _number_problems,
    "boolean": _boolean_problems,
    "blob": _blob_problems,
    "timestamp": _timestamp_problems,
}


def _size_problems(where: str, size: int, meta: Mapping[str, Any], unit: str) -> list[str]:
    if "min" in meta and size < meta["min"]:
        return [f"{where}: has {size} {unit}, at least {meta['min']} required"]
    if "max" in meta and size > meta["max"]:
        return [f"{where}: has {size} {unit}, at most {meta['max']} allowed"]
    return []


def _range_problems(where: str, value: float, meta: Mapping[str, Any]) -> list[str]:
    if "min" in meta and value < meta["min"]:
        return [f"{where}: {value} is below the minimum {meta['min']}"]
    if "max" in meta and value > meta["max"]:
        return [f"{where}: {value} is above the maximum {meta['max']}"]
    return []


def validate_request(service: str, operation: str, params: Mapping[str, Any]) -> None:
    """Raise InvalidRequestError listing every problem of `params` for `service`'s `operation`."""
    name = operation_name(service, operation)
    shape = service_model(service).operation_model(name).input_shape
    problems = request_problems(shape, params, "") if shape is not None else []
    if problems:
        raise InvalidRequestError(name, problems)


# ---------------------------------------------------------------------------------------------------------
# Session, clients, sending


def _printable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return json.loads(value)
        except ValueError:
            return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "read"):
        return f"<contents of {getattr(value, 'name', 'a stream')}>"
    return str(value)


def request_json(service: str, operation: str, params: Mapping[str, Any]) -> str:
    document = {"service": service, "operation": operation_name(service, operation), "request": params}
    return json.dumps(document, indent=2, default=_printable)


class Aws:
    """Clients for one command run. With dry_run=True nothing is ever sent: `send` prints the request."""

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        dry_run: bool = False,
        out: Any = None,
    ) -> None:
        self.requested_region = region
        # None lets boto3 apply AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> itself.
        self.endpoint_url = endpoint_url
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3

            from fleetcast.client import requested_region

            self._session = boto3.session.Session(region_name=requested_region(self.requested_region))
        return self._session

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            from fleetcast.client import NO_REGION

            raise LaunchError(NO_REGION)
        return region

    def client(self, service: str) -> Any:
        if self.dry_run:
            raise LaunchError(f"internal: a {service} client was requested in --dry-run")
        if service not in self._clients:
            from botocore.config import Config

            # Calls to a local endpoint go through fleetcast.client, which owns the loopback set-up.
            config = Config(retries={"mode": "standard"}, user_agent_extra="fleetcast-launch")
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[service]

    def use_client(self, service: str, client: Any) -> None:
        """Supply a ready client (a local endpoint, or a botocore Stubber in tests)."""
        self._clients[service] = client

    def send(self, service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate, then print (dry run) or send. Returns the response ({} in a dry run)."""
        validate_request(service, operation, params)
        if self.dry_run:
            print(request_json(service, operation, params), file=self.out, flush=True)
            return {}
        return call(self.client(service), service, operation, params)


def call(client: Any, service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `params`, then send them with `client` (any boto3 client for `service`)."""
    validate_request(service, operation, params)
    return getattr(client, _snake(operation_name(service, operation)))(**params)


def add_common_arguments(parser: argparse.ArgumentParser, *, needs: Iterable[str] = ()) -> None:
    """The flags every command accepts; `needs` lists which of image/role/bucket/prefix it requires."""
    needs = set(needs)
    group = parser.add_argument_group("common")
    group.add_argument("--image", required="image" in needs, help="image URI (from build_and_push.sh)")
    group.add_argument("--role", required="role" in needs, help="SageMaker execution role ARN")
    group.add_argument("--bucket", required="bucket" in needs, help="S3 bucket holding the prefix")
    group.add_argument(
        "--prefix",
        required="prefix" in needs,
        help="S3 key prefix: raw/, customers/, models/, output/ live under it; also names resources",
    )
    group.add_argument("--region", default=None, help="AWS region (default: AWS_REGION / your config)")
    group.add_argument(
        "--endpoint-url",
        default=None,
        help="send API calls here instead of AWS (a local endpoint, moto); AWS_ENDPOINT_URL also works",
    )
    group.add_argument("--dry-run", action="store_true", help="print each request as JSON; send nothing")


def aws_from_args(args: argparse.Namespace) -> Aws:
    return Aws(region=args.region, endpoint_url=args.endpoint_url, dry_run=args.dry_run)


def endpoint_from_args(args: argparse.Namespace) -> str:
    """--endpoint-name, else the endpoint `deploy` names after --prefix (fleetcast-<prefix>)."""
    if getattr(args, "endpoint_name", None):
        return args.endpoint_name
    if args.prefix is None:
        raise LaunchError("pass --endpoint-name, or the --prefix the endpoint was deployed with")
    return base_name(args.prefix)


def layout_from_args(args: argparse.Namespace) -> Layout:
    if not args.bucket:
        raise LaunchError("--bucket is required for this command")
    return Layout(args.bucket, args.prefix or "")


def note(message: str) -> None:
    """Progress for the person at the terminal; stderr keeps stdout clean for --dry-run JSON."""
    print(message, file=sys.stderr, flush=True)
