"""Where TargetModel names resolve: a local folder or an S3 prefix (the model's ModelDataUrl).

A TargetModel is a relative key below the prefix (`7.tar.gz`, `eu/7.tar.gz`). Names that could leave the
prefix, or that S3 and a file system would read differently, are refused before anything is fetched.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

MAX_TARGET_MODEL_LENGTH = 1024
# A segment becomes a file name on a local models folder: at most NAME_MAX bytes, refused before any
# filesystem call (which would fail with "File name too long").
MAX_SEGMENT_BYTES = 255
# Printable ASCII without backslash: what a key below a prefix may safely contain on every backend.
_ALLOWED = re.compile(r"\A[A-Za-z0-9._\-+=@,/ ()!*']+\Z")


class InvalidTargetModelError(ValueError):
    """The TargetModel name is empty, too long, or would escape the models prefix."""


class ModelNotFoundError(LookupError):
    """No object exists at the TargetModel's location."""


def check_target_model(name: str | None) -> str:
    """Return the name if it is a safe relative key below the prefix; raise InvalidTargetModelError if not."""
    if not name:
        raise InvalidTargetModelError(
            "the X-Amzn-SageMaker-Target-Model header is required for a multi-model endpoint"
        )
    if len(name) > MAX_TARGET_MODEL_LENGTH:
        raise InvalidTargetModelError(f"TargetModel is longer than {MAX_TARGET_MODEL_LENGTH} characters")
    if not _ALLOWED.match(name):
        raise InvalidTargetModelError(
            f"TargetModel {name!r} contains characters other than letters, digits, spaces and ._-+=@,/()!*'"
        )
    if name.startswith("/"):
        raise InvalidTargetModelError(f"TargetModel {name!r} must be relative to the prefix, not absolute")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidTargetModelError(f"TargetModel {name!r} has an empty, '.' or '..' path segment")
    longest = max(len(part.encode()) for part in parts)
    if longest > MAX_SEGMENT_BYTES:
        raise InvalidTargetModelError(
            f"TargetModel has a path segment of {longest} characters; the limit is {MAX_SEGMENT_BYTES}"
        )
    return name


class ModelSource(Protocol):
    """The models prefix: fetches one TargetModel's archive to a local file."""

    description: str

    def uri(self, target_model: str) -> str: ...

    def fetch(self, target_model: str, destination: Path) -> int:
        """Copy the archive to `destination`; returns its size. Raises ModelNotFoundError."""
        ...


@dataclass
class LocalFolderSource:
    root: Path

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"models folder {self.root} does not exist")
        self.description = str(self.root)

    def uri(self, target_model: str) -> str:
        return str(self.root / check_target_model(target_model))

    def fetch(self, target_model: str, destination: Path) -> int:
        path = (self.root / check_target_model(target_model)).resolve()
        # A symlink inside the models folder must not lead the endpoint elsewhere on the disk.
        if self.root not in path.parents or not path.is_file():
            raise ModelNotFoundError(f"no model archive at {self.uri(target_model)}")
        shutil.copyfile(path, destination)
        return destination.stat().st_size


@dataclass
class S3Source:
    bucket: str
    prefix: str
    client: Any

    def __post_init__(self) -> None:
        self.prefix = self.prefix.strip("/")
        self.description = f"s3://{self.bucket}/{self.prefix}"

    def key(self, target_model: str) -> str:
        name = check_target_model(target_model)
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, target_model: str) -> str:
        return f"s3://{self.bucket}/{self.key(target_model)}"

    def fetch(self, target_model: str, destination: Path) -> int:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self.key(target_model), str(destination))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ModelNotFoundError(f"no model archive at {self.uri(target_model)}") from exc
            raise
        return destination.stat().st_size


def open_source(models: str, s3_endpoint_url: str | None = None, region: str | None = None) -> ModelSource:
    """`models` is a folder or `s3://bucket/prefix`."""
    if models.startswith("s3://"):
        import boto3

        bucket, _, prefix = models[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{models!r} names no bucket")
        client = boto3.client("s3", endpoint_url=s3_endpoint_url, region_name=region)
        return S3Source(bucket=bucket, prefix=prefix, client=client)
    return LocalFolderSource(Path(models))
