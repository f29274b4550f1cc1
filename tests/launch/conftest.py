"""Fixtures for the launch tests: an in-process moto server on 127.0.0.1 and the CLI run against it."""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# `launch` is run as `python -m launch` from the repository root, so it is not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

REGION = "us-east-1"
BUCKET = "fleetcast-test"
PREFIX = "demo"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fleetcast:latest"
ROLE = "arn:aws:iam::123456789012:role/FleetcastSageMaker"
COMMON = ["--image", IMAGE, "--role", ROLE, "--bucket", BUCKET, "--prefix", PREFIX]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, and no user config or default endpoint that could reach real AWS."""
    for name in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    # Nothing listens on port 9: a test that forgot the moto fixture fails fast instead of calling AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per API call is noise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto (state reset) that every boto3 client in the test reaches via AWS_ENDPOINT_URL."""
    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10) as response:
        assert response.status == 200
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def clients(moto: str) -> dict[str, Any]:
    """Independent boto3 clients for checking what the CLI recorded in moto."""
    import boto3

    session = boto3.session.Session(region_name=REGION)
    return {
        name: session.client(name, endpoint_url=moto)
        for name in ("s3", "sagemaker", "application-autoscaling")
    }


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `python -m launch ARGV` in-process; returns (exit code, stdout, stderr)."""
    from launch.__main__ import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The concatenated pretty-printed JSON documents a --dry-run prints."""
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
    return documents


@pytest.fixture
def json_documents() -> Callable[[str], list[dict[str, Any]]]:
    return parse_documents


@pytest.fixture
def names() -> SimpleNamespace:
    """The bucket, prefix, image and role every test uses, and the common flags spelling them."""
    return SimpleNamespace(
        region=REGION, bucket=BUCKET, prefix=PREFIX, image=IMAGE, role=ROLE, common=list(COMMON)
    )
