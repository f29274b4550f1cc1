"""`python -m launch invoke`: a thin CLI over fleetcast.client, run against the real local endpoint.

`fleetcast serve` (lean) behind `fleetcast local-endpoint --model-ready-timeout 0` (tests/support/servers.py):
every cold model's first call answers ModelNotReadyException, so each command here goes through the
client's retry as a slow cold load on SageMaker would make it. The client itself is tests/test_client.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from fleetcast.client import target_model
from tests.serving.models import serving_models
from tests.support.servers import refused_port, start_lean, start_local_endpoint

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("launch-invoke")
    models = {kind: built.customer for kind, built in serving_models(root).items()}
    with (
        start_lean(root / "lean", workers=1) as lean,
        start_local_endpoint(
            root / "endpoint",
            models=root / "archives",
            container=lean.url,
            args=["--model-ready-timeout", "0"],
        ) as local_endpoint,
    ):
        yield SimpleNamespace(url=local_endpoint.url, **models)


def invoke(cli: Cli, url: str, *argv: str) -> tuple[int, str, str]:
    return cli("invoke", "--endpoint-url", url, "--endpoint-name", "fleetcast", *argv)


def test_tables_for_each_customer_and_one_failure_reported(cli: Cli, endpoint: SimpleNamespace) -> None:
    code, out, err = invoke(
        cli,
        endpoint.url,
        *("--customer", endpoint.daily, "--customer", "nobody", "--customer", endpoint.no_intervals),
        *("--period", "3", "--max-attempts", "2"),
    )
    assert code == 1, err  # the unknown customer; the other two still printed
    # With a zero ready-timeout the endpoint answers before the missing archive's look-up fails, so an
    # unknown customer looks like a model still loading until the attempts run out.
    assert "error: customer nobody: nobody.tar.gz: still ModelNotReadyException after 2 attempts" in err
    assert f"{target_model(endpoint.daily)}: ModelNotReadyException (attempt 1/2); retrying in 1 s" in err
    first, second = (table.splitlines() for table in out.strip().split("\n\n"))
    assert first[0].startswith(f"customer {endpoint.daily}: 3 steps from fleetcast (variant AllTraffic")
    assert first[1].split() == ["ds", "yhat", "yhat_lower", "yhat_upper"] and len(first) == 3 + 3
    # Trained with uncertainty_samples=0: the default asks for no intervals, so no 400.
    assert second[0].startswith(f"customer {endpoint.no_intervals}: 3 steps")
    assert second[1].split() == ["ds", "yhat"] and len(second) == 3 + 3


def test_json_prints_the_answers_as_sent(cli: Cli, endpoint: SimpleNamespace) -> None:
    code, out, err = invoke(
        cli, endpoint.url, "--customer", endpoint.hourly, "--period", "5", "--no-intervals", "--json"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["customer"] == endpoint.hourly and len(answer["forecast"]) == 5
    assert set(answer["forecast"][0]) == {"ds", "yhat"}


def test_asking_for_intervals_a_model_cannot_give_is_its_own_error(
    cli: Cli, endpoint: SimpleNamespace
) -> None:
    code, _, err = invoke(cli, endpoint.url, "--customer", endpoint.no_intervals, "--intervals")
    assert code == 1
    assert f"error: customer {endpoint.no_intervals}: {target_model(endpoint.no_intervals)}: " in err
    assert "intervals_unavailable" in err


def test_dry_run_prints_the_request_the_client_sends(
    cli: Cli, json_documents: Callable[[str], list[dict]], names: SimpleNamespace
) -> None:
    code, out, _ = cli(
        "invoke", "--prefix", names.prefix, "--customer", "7", "--customer", "a/b", "--dry-run"
    )
    assert code == 0
    first, second = (document["request"] for document in json_documents(out))
    assert first == {
        "EndpointName": f"fleetcast-{names.prefix}",
        "TargetModel": "7.tar.gz",
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": {"period": 7},  # no intervals: the model's own choice
    }
    assert second["TargetModel"] == target_model("a/b") != "a/b.tar.gz"
    code, out, _ = cli("invoke", "--prefix", names.prefix, "--customer", "7", "--intervals", "--dry-run")
    assert json_documents(out)[0]["request"]["Body"] == {"period": 7, "intervals": True}


def test_a_malformed_request_is_refused_before_anything_is_sent(cli: Cli) -> None:
    # Nothing listens there: had the request been sent, the error would be a connection failure.
    with refused_port() as port:
        code, _, err = invoke(
            cli, f"http://127.0.0.1:{port}", "--customer", "7", "--endpoint-name", "bad_name"
        )
    assert code == 2
    assert "InvokeEndpoint request is invalid" in err and "EndpointName: 'bad_name' does not match" in err


def test_an_unreachable_endpoint_fails_each_customer_clearly(cli: Cli) -> None:
    with refused_port() as port:
        code, out, err = invoke(cli, f"http://127.0.0.1:{port}", "--customer", "7", "--customer", "8")
    assert code == 1 and out == ""
    assert err.count("Could not connect to the endpoint URL") == 2, err


def test_max_attempts_below_one_is_a_usage_error(cli: Cli) -> None:
    code, _, err = cli("invoke", "--endpoint-name", "fleetcast", "--customer", "7", "--max-attempts", "0")
    assert code == 2 and "--max-attempts must be at least 1, got 0" in err
