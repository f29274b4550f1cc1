"""`python -m launch invoke`, a thin CLI over fleetcast.client: what it does before and instead of sending.

Its calls to a real endpoint (lean behind the local endpoint, through the client's retry) run in
tests/test_client.py, next to the client's own tests and on the same servers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from fleetcast.client import target_model
from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.model import manifest
from tests.support.servers import refused_port

Cli = Callable[..., tuple[int, str, str]]


def invoke(cli: Cli, url: str, *argv: str) -> tuple[int, str, str]:
    return cli("invoke", "--endpoint-url", url, "--endpoint-name", "fleetcast", *argv)


def test_dry_run_prints_the_request_the_client_sends(
    cli: Cli, json_documents: Callable[[str], list[dict]], names: SimpleNamespace, tmp_path: Path
) -> None:
    written = [
        manifest.entry_for(c, "job-7", "d", "s", "configured", None) for c in ("7", safe_customer_id("a/b"))
    ]
    manifest.write_manifest(tmp_path / "manifest.csv.gz", sorted(written))
    customers = ["--customer", "7", "--customer", "a/b"]
    code, out, _ = cli(
        "invoke", "--prefix", names.prefix, *customers, "--manifest", str(tmp_path), "--dry-run"
    )
    assert code == 0
    first, second = (document["request"] for document in json_documents(out))
    assert first == {
        "EndpointName": f"fleetcast-{names.prefix}",
        "TargetModel": "job-7/7.tar.gz",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": {"period": 7},  # no intervals: the model's own choice
    }
    assert second["TargetModel"] == f"job-7/{target_model('a/b')}" != "job-7/a/b.tar.gz"
    code, out, _ = cli(
        "invoke",
        "--prefix",
        names.prefix,
        "--customer",
        "7",
        "--intervals",
        "--manifest",
        str(tmp_path),
        "--dry-run",
    )
    assert json_documents(out)[0]["request"]["Body"] == {"period": 7, "intervals": True}
    code, _, err = cli(
        "invoke", "--prefix", names.prefix, "--customer", "8", "--manifest", str(tmp_path), "--dry-run"
    )
    assert code == 2 and "customer 8 has no model in the fleet manifest" in err


def test_dry_run_never_reads_the_manifest_in_s3(
    cli: Cli, json_documents: Callable[[str], list[dict]], names: SimpleNamespace
) -> None:
    code, out, err = cli(
        "invoke", "--prefix", names.prefix, "--bucket", "b-1", "--customer", "7", "--dry-run"
    )
    assert code == 0
    assert json_documents(out)[0]["request"]["TargetModel"] == "RUN/7.tar.gz"
    assert f"would read s3://b-1/{names.prefix}/models/manifest.csv.gz" in err
    code, _, err = cli("invoke", "--prefix", names.prefix, "--customer", "7", "--dry-run")
    assert code == 2 and "pass --bucket" in err


def test_a_malformed_request_is_refused_before_anything_is_sent(cli: Cli) -> None:
    # Nothing listens there: had the request been sent, the error would be a connection failure.
    with refused_port() as port:
        code, _, err = invoke(
            cli,
            f"http://127.0.0.1:{port}",
            "--customer",
            "7",
            "--endpoint-name",
            "bad_name",
            "--manifest",
            "-",
        )
    assert code == 2
    assert "InvokeEndpoint request is invalid" in err and "EndpointName: 'bad_name' does not match" in err


def test_an_unreachable_endpoint_fails_each_customer_clearly(cli: Cli, tmp_path: Path) -> None:
    written = [manifest.entry_for(c, "job-7", "d", "s", "configured", None) for c in ("7", "8")]
    manifest.write_manifest(tmp_path / "manifest.csv.gz", written)
    with refused_port() as port:
        code, out, err = invoke(
            cli, f"http://127.0.0.1:{port}", "--customer", "7", "--customer", "8", "--manifest", str(tmp_path)
        )
    assert code == 1 and out == ""
    assert err.count("Could not connect to the endpoint URL") == 2, err


def test_max_attempts_below_one_is_a_usage_error(cli: Cli) -> None:
    code, _, err = cli(
        "invoke", "--endpoint-name", "fleetcast", "--customer", "7", "--max-attempts", "0", "--manifest", "m"
    )
    assert code == 2 and "--max-attempts must be at least 1, got 0" in err
