"""The one invoke client (fleetcast.client) with real boto3 against real servers.

- The real path: `fleetcast serve` (lean) behind `fleetcast local-endpoint --model-ready-timeout 0`, both
  started by tests/support/servers.py. With a zero ready-timeout every cold model's first call answers
  ModelNotReadyException while the load goes on, exactly as a slow cold load on SageMaker does, so the
  client's retry is exercised against the endpoint's own error.
- Throttling and retry limits: a tiny HTTP server here that answers in the InvokeEndpoint error shape
  (`x-amzn-ErrorType`), because no real server of ours throttles.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from fleetcast.client import (
    LOOPBACK_CREDENTIALS,
    Forecast,
    InvokeError,
    RetryPolicy,
    format_table,
    invoke_main,
    request_forecast,
    runtime_client,
    target_model,
)
from fleetcast.data.customer_ids import safe_customer_id
from fleetcast.model import archive, blend, manifest
from fleetcast.model.archive import archive_name
from tests.serving.models import BuiltModel, build_model, daily_history, serving_models
from tests.support.servers import start_lean, start_local_endpoint

# Real server processes (or the aws CLI and a moto server) start here: not for `make test-fast`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAST_RETRY = RetryPolicy(max_attempts=12, first_delay_s=0.05, max_delay_s=1.0)
AWS_SETTINGS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
)


def unversioned_manifest(folder: Path, customers: list[str]) -> str:
    """A fleet manifest naming each customer's unversioned archive, the names the fixture's folder holds."""
    rows = [
        manifest.entry_for(c, "r", "d", "s", "m", None)._replace(target_model=target_model(c))
        for c in customers
    ]
    path, _ = manifest.write_manifest(folder / manifest.MANIFEST_NAME, sorted(rows))
    return str(path)


def no_aws_environment(tmp_path: Path) -> dict[str, str]:
    """This process's environment without any AWS credentials, region, endpoint or config file."""
    env = {key: value for key, value in os.environ.items() if key not in AWS_SETTINGS}
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # never ask an instance metadata service
    return env


def run_python(tmp_path: Path, *arguments: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`python ARGUMENTS` run from the repository as a user with no AWS set-up at all runs it."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        env=no_aws_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in AWS_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    for key, value in no_aws_environment(tmp_path).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)


# ------------------------------------------------------------------ the real endpoint
@dataclass
class RealEndpoint:
    url: str  # the endpoint as a user starts it (a model has 60 s to become ready)
    impatient_url: str  # --model-ready-timeout 0: every cold model's first call is ModelNotReady
    models: dict[str, BuiltModel]

    def stats(self, url: str) -> dict[str, Any]:
        return requests.get(f"{url}/fleetcast/stats", timeout=10).json()


@pytest.fixture(scope="module")
def real_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealEndpoint]:
    root = tmp_path_factory.mktemp("client")
    models = serving_models(root)
    # Served only by the retry test, so it is cold there whatever ran before.
    models["retried"] = build_model(root, "11", daily_history(11))
    models["blend"] = build_model(root, "12", daily_history(12), weights=blend.WEIGHTS[-1])
    models["weekly-change"] = build_model(root, "13", daily_history(13), kind=archive.CHANGE_KIND)
    with (
        start_lean(root / "lean", workers=1) as lean,
        start_local_endpoint(root / "endpoint", models=root / "archives", container=lean.url) as endpoint,
        start_local_endpoint(
            root / "impatient",
            models=root / "archives",
            container=lean.url,
            args=["--model-ready-timeout", "0"],
        ) as impatient,
    ):
        yield RealEndpoint(endpoint.url, impatient.url, models)


def test_model_not_ready_from_the_real_endpoint_is_retried_until_served(
    real_endpoint: RealEndpoint, no_aws: None
) -> None:
    url = real_endpoint.impatient_url
    hourly = real_endpoint.models["hourly"].customer
    assert target_model(hourly) not in real_endpoint.stats(url)["loaded"]  # cold: nothing asked for it yet
    client = runtime_client(url)
    # What the endpoint itself answers a cold model's call: ModelNotReadyException, load going on.
    with pytest.raises(client.exceptions.ModelNotReadyException, match="retry"):
        client.invoke_endpoint(
            EndpointName="fleetcast", TargetModel=target_model(hourly), Body=b'{"period": 2}'
        )
    notes: list[tuple[str, str, int, float]] = []
    fresh = real_endpoint.models["retried"].customer
    assert target_model(fresh) not in real_endpoint.stats(url)["loaded"]
    forecast = request_forecast(
        runtime_client(url),
        "fleetcast",
        fresh,
        4,
        retry=FAST_RETRY,
        on_retry=lambda *note: notes.append(note),
    )
    assert forecast.customer == fresh and len(forecast.rows) == 4
    assert forecast.attempts >= 2 and len(notes) == forecast.attempts - 1
    assert {note[1] for note in notes} == {"ModelNotReadyException"}
    assert [note[3] for note in notes] == [FAST_RETRY.delay_after(n) for n in range(1, forecast.attempts)]
    # The call that answered found the load the first call started, finished: one load, no second.
    assert forecast.variant == "AllTraffic" and forecast.cache == "hit"
    assert target_model(fresh) in real_endpoint.stats(url)["loaded"]


def test_intervals_follow_the_model_unless_asked(real_endpoint: RealEndpoint, no_aws: None) -> None:
    client = runtime_client(real_endpoint.url)
    with_samples = real_endpoint.models["daily"].customer
    without_samples = real_endpoint.models["no_intervals"].customer  # trained with uncertainty_samples=0

    def forecast(customer: str, intervals: bool | None = None) -> Forecast:
        return request_forecast(client, "fleetcast", customer, 3, intervals=intervals, retry=FAST_RETRY)

    assert all({"yhat_lower", "yhat_upper"} <= set(row) for row in forecast(with_samples).rows)
    point_only = forecast(without_samples)  # the default must not ask for what the model cannot give
    assert len(point_only.rows) == 3 and all("yhat_lower" not in row for row in point_only.rows)
    assert all("yhat_lower" not in row for row in forecast(with_samples, intervals=False).rows)
    with pytest.raises(InvokeError, match="intervals_unavailable"):
        forecast(without_samples, intervals=True)


def test_an_unknown_customer_is_a_clear_error_and_not_retried(
    real_endpoint: RealEndpoint, no_aws: None
) -> None:
    notes: list[Any] = []
    with pytest.raises(InvokeError, match=r"nobody\.tar\.gz: ValidationError: .*nobody\.tar\.gz"):
        request_forecast(
            runtime_client(real_endpoint.url),
            "fleetcast",
            "nobody",
            3,
            retry=FAST_RETRY,
            on_retry=lambda *note: notes.append(note),
        )
    assert notes == []


def test_fleetcast_invoke_prints_one_table_per_customer(real_endpoint: RealEndpoint, tmp_path: Path) -> None:
    """The command as a user runs it, with no AWS set-up at all: loopback placeholder credentials."""
    daily, point_only = (real_endpoint.models[kind].customer for kind in ("daily", "no_intervals"))
    command = ["-m", "fleetcast.cli", "invoke", "--endpoint-url", real_endpoint.url]
    customers = ["--customer", daily, "--customer", "nobody", "--customer", point_only]
    done = run_python(tmp_path, *command, *customers, "--period", "2")
    assert done.returncode == 1, done.stderr  # one customer failed; the others still printed
    assert "error: customer nobody: nobody.tar.gz: ValidationError" in done.stderr
    tables = done.stdout.split("\n\n")
    assert len(tables) == 2
    first, second = (table.splitlines() for table in tables)
    assert first[0].startswith(f"customer {daily}: 2 steps from fleetcast (variant AllTraffic, ")
    assert first[1].split() == ["ds", "yhat", "yhat_lower", "yhat_upper"] and len(first) == 3 + 2
    assert second[0].startswith(f"customer {point_only}: 2 steps")
    assert second[1].split() == ["ds", "yhat"] and len(second) == 3 + 2

    as_json = run_python(tmp_path, *command, "--customer", daily, "--period", "2", "--json", check=True)
    answer = json.loads(as_json.stdout)
    assert answer["customer"] == daily and len(answer["forecast"]) == 2


def test_launch_invoke_retries_prints_tables_and_reports_failures(
    real_endpoint: RealEndpoint, tmp_path: Path
) -> None:
    """`python -m launch invoke` at the impatient endpoint: every model here is cold, so each retries."""
    daily, point_only = (real_endpoint.models[kind].customer for kind in ("daily", "no_intervals"))
    command = ["invoke", "--endpoint-url", real_endpoint.impatient_url, "--endpoint-name", "fleetcast"]
    command += ["--manifest", unversioned_manifest(tmp_path, [daily, point_only])]
    customers = ["--customer", daily, "--customer", "nobody", "--customer", point_only]
    done = run_python(tmp_path, "-m", "launch", *command, *customers, "--period", "3", "--max-attempts", "2")
    assert done.returncode == 1, done.stderr  # the unknown customer; the other two still printed
    assert f"{target_model(daily)}: ModelNotReadyException (attempt 1/2); retrying in 1 s" in done.stderr
    assert "error: customer nobody: customer nobody has no model in the fleet manifest" in done.stderr
    first, second = (table.splitlines() for table in done.stdout.strip().split("\n\n"))
    assert first[0].startswith(f"customer {daily}: 3 steps from fleetcast (variant AllTraffic")
    assert first[0].endswith(", 2 attempts)")
    assert first[1].split() == ["ds", "yhat", "yhat_lower", "yhat_upper"] and len(first) == 3 + 3
    assert second[0].startswith(f"customer {point_only}: 3 steps")  # no intervals asked: no 400
    assert second[1].split() == ["ds", "yhat"] and len(second) == 3 + 3


@pytest.mark.parametrize("kind", ["naive", "blend", "weekly-change"])
def test_a_seasonal_naive_blend_or_seasonal_change_customer_is_invoked_like_any_other(
    real_endpoint: RealEndpoint, tmp_path: Path, kind: str
) -> None:
    """The baseline, blend and seasonal-change model kinds through the local endpoint, `fleetcast invoke`
    and `launch invoke`: the predictor's own answer, intervals included."""
    from fleetcast.serving.predictors import load_model
    from fleetcast.serving.protocol import ForecastRequest

    built = real_endpoint.models[kind]
    naive = built.customer
    forecast = request_forecast(runtime_client(real_endpoint.url), "fleetcast", naive, 3, retry=FAST_RETRY)
    assert forecast.customer == naive and all(
        {"yhat_lower", "yhat_upper"} <= set(row) for row in forecast.rows
    )
    assert all(row["yhat_lower"] < row["yhat"] < row["yhat_upper"] for row in forecast.rows)
    assert forecast.rows == load_model(built.model_dir).predictor.forecast(ForecastRequest(3))["forecast"]
    listed = unversioned_manifest(tmp_path, [naive])
    for command in (
        ["-m", "fleetcast.cli", "invoke", "--manifest", listed],
        ["-m", "launch", "invoke", "--endpoint-name", "fleetcast", "--manifest", listed],
    ):
        done = run_python(
            tmp_path, *command, "--endpoint-url", real_endpoint.url, "--customer", naive, "--period", "3"
        )
        assert done.returncode == 0, done.stderr
        table = done.stdout.strip().splitlines()
        assert table[0].startswith(f"customer {naive}: 3 steps from fleetcast")
        assert table[1].split() == ["ds", "yhat", "yhat_lower", "yhat_upper"] and len(table) == 3 + 3


def test_predict_sh_formats_with_the_client_table(real_endpoint: RealEndpoint, tmp_path: Path) -> None:
    """local_test/predict.sh calls a container directly (no endpoint) and prints the client's table."""
    built = real_endpoint.models["no_intervals"]
    with start_lean(tmp_path / "lean", workers=1) as lean:
        done = subprocess.run(
            ["bash", str(REPO / "local_test" / "predict.sh"), str(built.archive), "3"],
            env={**os.environ, "FLEETCAST_CONTAINER_URL": lean.url, "FLEETCAST_PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # The same model's answer, asked for here: predict.sh must print exactly the client's table of it.
        assert lean.load("again", built.model_dir).status_code == 200
        answer = lean.invoke("again", json.dumps({"period": 3})).json()
    expected = format_table(Forecast(answer=answer)).splitlines()
    assert expected[0] == f"customer {built.customer}: 3 steps" and expected[1].split() == ["ds", "yhat"]
    lines = done.stdout.splitlines()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected


# ------------------------------------------------------------------ naming, credentials
def test_target_model_is_the_name_the_archive_writer_gives() -> None:
    assert target_model("7") == archive_name("7") == "7.tar.gz"
    raw = "ACME/plant 42"  # training stored it under its safe id; both spellings reach that archive
    assert target_model(raw) == archive_name(safe_customer_id(raw)) == target_model(safe_customer_id(raw))
    assert "/" not in target_model(raw) and " " not in target_model(raw)


def test_a_written_archive_is_reached_by_its_customer_id(real_endpoint: RealEndpoint, no_aws: None) -> None:
    for built in real_endpoint.models.values():
        assert built.archive.name == target_model(built.customer)


def test_loopback_gets_placeholder_credentials_only_when_none_are_set(
    monkeypatch: pytest.MonkeyPatch, no_aws: None
) -> None:
    with ScriptedEndpoint([ok_answer()] * 3) as endpoint:
        request_forecast(runtime_client(endpoint.url), "fleetcast", "7", 1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint.url)  # boto3's own way to name an endpoint
        request_forecast(runtime_client(), "fleetcast", "7", 1)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDREAL")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
        request_forecast(runtime_client(endpoint.url), "fleetcast", "7", 1)
    placeholder = f"Credential={LOOPBACK_CREDENTIALS['aws_access_key_id']}/"
    signatures = [request.headers["Authorization"] for request in endpoint.requests]
    assert [placeholder in signature for signature in signatures] == [True, True, False]
    assert "Credential=AKIDREAL/" in signatures[2]
    assert all("/us-east-1/sagemaker/aws4_request" in signature for signature in signatures)


def test_aws_region_alone_sets_the_region(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 reads only AWS_DEFAULT_REGION; AWS_REGION (the AWS CLI v2's, the walkthrough's) counts too,
    after an explicit region and ahead of boto3's own."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert runtime_client().meta.region_name == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert runtime_client().meta.region_name == "eu-west-1"
    assert runtime_client(region="ap-south-1").meta.region_name == "ap-south-1"


def test_a_remote_endpoint_never_gets_placeholder_credentials(no_aws: None) -> None:
    with pytest.raises(InvokeError, match="no AWS region"):
        runtime_client()
    client = runtime_client(region="eu-west-1")
    assert client.meta.endpoint_url == "https://runtime.sagemaker.eu-west-1.amazonaws.com"
    # botocore signs before it sends: without credentials nothing leaves this machine.
    with pytest.raises(InvokeError, match="Unable to locate credentials"):
        request_forecast(client, "fleetcast", "7", 1)


# ------------------------------------------------------------------ throttling and retry limits
def ok_answer(customer: str = "7") -> tuple[int, str | None, dict[str, Any]]:
    return 200, None, {"customer": customer, "forecast": [{"ds": "2023-01-01T00:00:00", "yhat": 1.5}]}


def error_answer(error_type: str, status: int) -> tuple[int, str | None, dict[str, Any]]:
    return status, error_type, {"message": f"{error_type} from the scripted endpoint"}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class ScriptedEndpoint:
    """An HTTP server answering InvokeEndpoint calls from a script, recording every call it received."""

    script: list[tuple[int, str | None, dict[str, Any]]]
    requests: list[Seen] = field(default_factory=list)

    def __enter__(self) -> ScriptedEndpoint:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                scripted.requests.append(Seen(self.path, dict(self.headers), body, time.monotonic()))
                status, error_type, answer = scripted.script[len(scripted.requests) - 1]
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                else:
                    self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_throttling_is_retried_with_growing_bounded_waits(no_aws: None) -> None:
    policy = RetryPolicy(max_attempts=5, first_delay_s=0.1, max_delay_s=0.25)
    script = [error_answer("ThrottlingException", 400)] * 3 + [error_answer("ModelNotReadyException", 429)]
    with ScriptedEndpoint([*script, ok_answer()]) as endpoint:
        forecast = request_forecast(runtime_client(endpoint.url), "fleetcast", "7", 1, retry=policy)
    assert forecast.attempts == 5 and forecast.rows[0]["yhat"] == 1.5
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(endpoint.requests)]
    expected = [0.1, 0.2, 0.25, 0.25]  # doubling, then capped
    assert [policy.delay_after(n) for n in range(1, 5)] == expected
    assert all(want <= gap < want + 0.5 for gap, want in zip(gaps, expected, strict=True)), gaps
    assert {request.headers["X-Amzn-SageMaker-Target-Model"] for request in endpoint.requests} == {"7.tar.gz"}
    assert all(request.path == "/endpoints/fleetcast/invocations" for request in endpoint.requests)


def test_retries_stop_at_max_attempts_and_botocore_adds_none(no_aws: None) -> None:
    policy = RetryPolicy(max_attempts=3, first_delay_s=0.01)
    with (
        ScriptedEndpoint([error_answer("ThrottlingException", 400)] * 4) as endpoint,
        pytest.raises(InvokeError, match="still ThrottlingException after 3 attempts"),
    ):
        request_forecast(runtime_client(endpoint.url), "fleetcast", "7", 1, retry=policy)
    assert len(endpoint.requests) == 3


@pytest.mark.parametrize(("error_type", "status"), [("ValidationError", 400), ("InternalFailure", 500)])
def test_errors_that_will_not_change_are_not_retried(error_type: str, status: int, no_aws: None) -> None:
    with (
        ScriptedEndpoint([error_answer(error_type, status), ok_answer()]) as endpoint,
        pytest.raises(InvokeError, match=f"7.tar.gz: {error_type}: {error_type} from the scripted"),
    ):
        request_forecast(runtime_client(endpoint.url), "fleetcast", "7", 1, retry=FAST_RETRY)
    assert len(endpoint.requests) == 1


def test_the_body_asks_only_for_what_the_caller_gave(no_aws: None) -> None:
    with ScriptedEndpoint([ok_answer()] * 2) as endpoint:
        client = runtime_client(endpoint.url)
        request_forecast(client, "fleetcast", "7", 5)
        request_forecast(client, "fleetcast", "7", 5, freq="h", intervals=True)
    assert [request.body for request in endpoint.requests] == [
        {"period": 5},
        {"period": 5, "freq": "h", "intervals": True},
    ]


def test_invoke_main_reports_retries_and_failures(no_aws: None) -> None:
    script = [error_answer("ThrottlingException", 400), ok_answer("7"), error_answer("ValidationError", 400)]
    out, err = io.StringIO(), io.StringIO()
    with ScriptedEndpoint(script) as endpoint:
        code = invoke_main(
            customers=["7", "8"],
            endpoint_name="fleetcast",
            period=1,
            endpoint_url=endpoint.url,
            retry=RetryPolicy(first_delay_s=0.01),
            out=out,
            err=err,
        )
    assert code == 1
    assert "7.tar.gz: ThrottlingException (attempt 1/6); retrying in 0.01 s" in err.getvalue()
    assert "error: customer 8: 8.tar.gz: ValidationError" in err.getvalue()
    table = out.getvalue().splitlines()
    assert table[0].startswith("customer 7: 1 step from fleetcast (variant AllTraffic, ")
    assert table[0].endswith(", 2 attempts)")
    assert table[3].split() == ["2023-01-01T00:00:00", "1.50"]


def test_the_table_marks_missing_values() -> None:
    answer = {
        "customer": "3",
        "forecast": [
            {"ds": "2023-01-01T00:00:00", "yhat": 1.0, "yhat_lower": 0.5, "yhat_upper": 1.5},
            {"ds": "2023-01-02T00:00:00", "yhat": 2.0, "yhat_lower": None, "yhat_upper": None},
        ],
    }
    lines = format_table(Forecast(answer=answer)).splitlines()
    assert lines[0] == "customer 3: 2 steps"
    assert lines[3].split() == ["2023-01-01T00:00:00", "1.00", "0.50", "1.50"]
    assert lines[4].split() == ["2023-01-02T00:00:00", "2.00", "-", "-"]
