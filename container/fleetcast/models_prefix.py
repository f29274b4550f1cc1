"""The models prefix (a folder, or `s3://bucket/prefix`): the runs' folders and the fleet manifest in it.

The names below the prefix are spelled in model/manifest.py and model/archive.py; this module reads and
writes them on either kind of store, for the three things done with a whole prefix:

- `merge_run`: publish a finished run (`fleetcast manifest merge`, run by `local-train` and by
  `launch train --wait`): the run's host manifests merged over the fleet manifest, written as
  `<run>/manifest.csv.gz` (kept) and then `manifest.csv.gz` (what serves now);
- `resolve`: customer ids to their current TargetModel (the invoke client, the local endpoint, plot);
- `write_sagemaker_manifest`: the archives the fleet manifest names, as a SageMaker manifest file (the batch
  forecast's input, dealt out to its instances by SageMaker);
- `open_prefix`: a folder or an S3 location, as the command line spells it.

S3 requests are few and counted by bench/scale.py: a merge is one LIST of the run's host manifests, one
HEAD and one GET of the previous manifest, one GET per host manifest and two PUTs (and one LIST per other
run whose rows would change the manifest, normally none); a resolve is one GET.

Two runs may publish at once (a pipeline execution and a manual run): each merges over the manifest it
read, and replaces it only if it is still that one (S3: a conditional PUT on its ETag; a folder: a lock
and the file's identity), else merges again over the newer one, so neither run's rows are lost.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from fleetcast.model import archive, manifest
from fleetcast.model.manifest import MANIFEST_NAME, ManifestEntry, ManifestError

log = logging.getLogger("fleetcast.manifest")


class ModelsPrefix(Protocol):
    """A store of named objects: the models prefix on a file system or in S3."""

    description: str

    def uri(self, name: str) -> str: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]:
        """A readable binary stream of the object; raises ManifestError when it does not exist."""
        ...

    def names(self, starting_with: str) -> list[str]:
        """The names of the objects whose name starts with `starting_with`, sorted."""
        ...

    def put(self, name: str, source: Path) -> None:
        """Store the file `source` as `name`, replacing it whole (a reader never sees a partial object)."""
        ...

    def version(self, name: str) -> str | None:
        """A token that changes whenever `name` is replaced; None when it does not exist."""
        ...

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        """`put`, only if `name` is still at version `expected` (None: still absent); else
        ManifestReplacedError."""
        ...


PUBLISH_LOCK = ".publish.lock"  # a folder prefix's publishers take turns on this file
PUBLISH_ATTEMPTS = 5


class ManifestReplacedError(ManifestError):
    """Another publish replaced the fleet manifest between this one's read and its write."""


@dataclass
class FolderPrefix:
    root: Path
    description: str = field(init=False)

    def __post_init__(self) -> None:
        self.description = str(self.root)

    def uri(self, name: str) -> str:
        return str(self.root / name)

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        try:
            return open(self.root / name, "rb")
        except FileNotFoundError as exc:
            raise ManifestError(f"no {self.uri(name)}") from exc

    def names(self, starting_with: str) -> list[str]:
        folder, _, _ = starting_with.rpartition("/")
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return []
        found = (f"{folder}/{p.name}" if folder else p.name for p in base.iterdir() if p.is_file())
        return sorted(name for name in found if name.startswith(starting_with) and not _hidden(name))

    def put(self, name: str, source: Path) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=archive.TEMP_PREFIX, dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, temp)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def version(self, name: str) -> str | None:
        try:
            stat = os.stat(self.root / name)
        except FileNotFoundError:
            return None
        return f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}"  # `put` renames a new file in

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / PUBLISH_LOCK, "a") as lock:  # publishers on this file system, one at a time
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.version(name) != expected:
                raise ManifestReplacedError(f"{self.uri(name)} was replaced while this run merged")
            self.put(name, source)


def _hidden(name: str) -> bool:
    return name.rpartition("/")[2].startswith(".")


@dataclass
class S3Prefix:
    bucket: str
    prefix: str
    client: Any
    description: str = field(init=False)

    def __post_init__(self) -> None:
        self.prefix = self.prefix.strip("/")
        self.description = f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def exists(self, name: str) -> bool:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key(name), MaxKeys=1)
        return any(item["Key"] == self.key(name) for item in listing.get("Contents", []))

    def open(self, name: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ManifestError(f"no {self.uri(name)}") from exc
            raise

    def names(self, starting_with: str) -> list[str]:
        strip = len(self.key(""))
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(starting_with)
        ):
            found += [item["Key"][strip:] for item in page.get("Contents", [])]
        return sorted(name for name in found if not _hidden(name))

    def put(self, name: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self.key(name))

    def version(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ETag"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def put_if(self, name: str, source: Path, expected: str | None) -> None:
        from botocore.exceptions import ClientError

        # S3's conditional writes: the PUT fails unless the object is still the one read (or still absent).
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            with open(source, "rb") as body:  # streamed from the file, not held in memory
                self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, **condition)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ManifestReplacedError(f"{self.uri(name)} was replaced while this run merged") from None
            raise


def open_prefix(location: str, s3_client: Any = None) -> ModelsPrefix:
    """`location` is a folder or `s3://bucket/prefix`; an S3 client is made when none is given."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{location!r} names no bucket")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Prefix(bucket, prefix, s3_client)
    return FolderPrefix(Path(location))


def manifest_at(location: str, s3_client: Any = None) -> tuple[ModelsPrefix, str]:
    """Where a fleet manifest is: `location` names the manifest file itself (`….csv.gz`) or the models
    prefix that holds it as manifest.csv.gz."""
    if location.endswith(".csv.gz"):
        parent, _, name = location.rstrip("/").rpartition("/")
        return open_prefix(parent or ".", s3_client), name
    return open_prefix(location, s3_client), MANIFEST_NAME


def read_entries(store: ModelsPrefix, name: str = MANIFEST_NAME) -> Iterator[ManifestEntry]:
    """The rows of a manifest in the store, streamed (closed when exhausted or abandoned)."""
    with store.open(name) as stream:
        yield from manifest.iter_entries(stream, store.uri(name))


class UnknownCustomerError(LookupError):
    """A customer the fleet manifest has no model for."""


def resolve(store: ModelsPrefix, name: str, customers: Iterable[str]) -> dict[str, ManifestEntry]:
    """Each customer's current row (one read of the manifest, stopped once all are found)."""
    wanted = set(customers)
    return manifest.load(read_entries(store, name), wanted=wanted)


# ---------------------------------------------------------------------------------------------- publishing
@dataclass(frozen=True)
class MergeResult:
    run: str
    hosts: int
    rows: int
    counts: dict[str, int]
    location: str


def merge_run(store: ModelsPrefix, run: str) -> MergeResult:
    """Publish `run`: its host manifests merged over the fleet manifest (see the module docstring)."""
    host_files = [
        name
        for name in store.names(f"{run}/{manifest.HOST_MANIFEST_PREFIX}")
        if manifest.is_host_manifest(name.rpartition("/")[2])
    ]
    if not host_files:
        raise ManifestError(
            f"run {run} has no host manifests under {store.uri(run + '/')} (did its training job finish?)"
        )
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        try:
            counts, rows = _merge_once(store, run, host_files)
            break
        except ManifestReplacedError as exc:
            if attempt == PUBLISH_ATTEMPTS:
                raise ManifestError(f"{exc}, {attempt} times; the fleet manifest is not updated") from None
            log.warning("%s: merging run %s again over the newer manifest", exc, run)
            time.sleep(0.05 * attempt)
    if counts.get("conflicts"):
        log.warning("%d customers appear in two host manifests of run %s; the first host's row won",
                    counts["conflicts"], run)  # fmt: skip
    log.info(
        "published run %s: %d host manifests merged into %s (%d customers: %d new, %d updated, %d kept)",
        run,
        len(host_files),
        store.uri(MANIFEST_NAME),
        rows,
        counts.get("added", 0),
        counts.get("updated", 0),
        counts.get("kept", 0),
    )
    return MergeResult(run, len(host_files), rows, counts, store.uri(MANIFEST_NAME))


def _merge_once(store: ModelsPrefix, run: str, host_files: list[str]) -> tuple[dict[str, int], int]:
    """One merge over the fleet manifest as it is now; ManifestReplacedError if another replaced it since."""
    counts: dict[str, int] = {}
    expected = store.version(MANIFEST_NAME)
    with tempfile.TemporaryDirectory(prefix="fleetcast-merge-") as work, ExitStack() as streams:
        checked_runs: set[str] = set()

        def check_other_run(entry: ManifestEntry) -> None:
            # A new row naming another run: the host manifests were copied under the wrong name (model.tar.gz
            # of job J extracted as models/K/), so its archives are not where the row says. One look per run.
            if entry.run == run or entry.run in checked_runs:
                return
            if not store.exists(entry.target_model):
                raise ManifestError(
                    f"the host manifests under {store.uri(run + '/')} name run {entry.run}, whose archive "
                    f"{store.uri(entry.target_model)} does not exist: publish a run from the folder named "
                    f"after it ({store.uri(entry.run + '/')}, --run {entry.run}); nothing was published"
                )
            checked_runs.add(entry.run)

        updates = [
            manifest.iter_entries(streams.enter_context(store.open(n)), store.uri(n)) for n in host_files
        ]
        previous: Iterable[ManifestEntry] = read_entries(store) if expected is not None else ()
        merged, rows = manifest.write_manifest(
            Path(work) / MANIFEST_NAME, manifest.merge(previous, updates, counts, check_other_run)
        )
        store.put(f"{run}/{MANIFEST_NAME}", merged)  # this run's own copy: no other run writes it
        store.put_if(MANIFEST_NAME, merged, expected)
    return counts, rows


def write_sagemaker_manifest(store: ModelsPrefix, out: IO[bytes]) -> int:
    """Write the archive the fleet manifest names for each customer to `out` as a SageMaker manifest file
    (what an input of S3DataType ManifestFile reads): a JSON array of `{"prefix": <models prefix>}`, then
    each archive's key below it. Streamed, row by row; returns how many archives it lists."""
    out.write(b"[" + json.dumps({"prefix": store.uri("")}).encode())
    listed = 0
    for entry in read_entries(store):
        out.write(b",\n" + json.dumps(entry.target_model).encode())
        listed += 1
    out.write(b"]\n")
    return listed


def write_new(location: str, source: Path, s3_client: Any = None) -> None:
    """Copy the file `source` to a file or `s3://bucket/key` that must not exist yet (ManifestError if it
    does): a SageMaker manifest file is named after its run or job, and a job may be reading it."""
    if not location.startswith("s3://"):
        target = Path(location)
        if target.exists():
            raise ManifestError(f"{location} exists already")
        FolderPrefix(target.parent).put(target.name, source)
        return
    from botocore.exceptions import ClientError

    bucket, _, key = location[len("s3://") :].partition("/")
    try:
        with open(source, "rb") as body:  # streamed from the file, not held in memory
            s3_client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
            raise ManifestError(f"{location} exists already") from None
        raise


def merge_main(
    models: str,
    run: str,
    s3_endpoint_url: str | None = None,
    region: str | None = None,
    sagemaker_manifest_at: str | None = None,
) -> int:
    """`fleetcast manifest merge`; with `sagemaker_manifest_at`, then the published archives' list there."""
    client = None
    s3_errors: tuple[type[Exception], ...] = ()
    if models.startswith("s3://") or (sagemaker_manifest_at or "").startswith("s3://"):
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client("s3", endpoint_url=s3_endpoint_url, region_name=region)
        s3_errors = (ClientError, BotoCoreError)  # no bucket, access denied, no credentials: one line
    try:
        store = open_prefix(models, client)
        merge_run(store, run)
        if sagemaker_manifest_at:
            with tempfile.TemporaryDirectory(prefix="fleetcast-listing-") as work:
                listing = Path(work) / "models.manifest"
                with open(listing, "wb") as out:
                    listed = write_sagemaker_manifest(store, out)
                write_new(sagemaker_manifest_at, listing, client)
            log.info("listed the %d archives the fleet manifest names in %s", listed, sagemaker_manifest_at)
    except (ManifestError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    except s3_errors as exc:
        log.error("cannot publish run %s into %s: %s", run, models, exc)
        return 1
    return 0
