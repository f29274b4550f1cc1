"""The serving environment is read in one place: every setting, its default, and a clear refusal."""

from __future__ import annotations

import pytest

from fleetcast.serving import environment
from fleetcast.serving.environment import MB, Limits, ServingEnvironment


def test_defaults_when_nothing_is_set():
    settings = ServingEnvironment.read({})
    assert settings == ServingEnvironment()
    assert (settings.server, settings.multi_model, settings.host, settings.port) == (
        "lean",
        False,
        "0.0.0.0",
        8080,
    )
    assert settings.limits == Limits(max_period=366, max_payload_bytes=6 * MB)
    assert settings.workers is None and settings.memory_mb is None and settings.max_models is None
    assert settings.min_free_bytes == 256 * MB


def test_every_setting_is_read():
    settings = ServingEnvironment.read(
        {
            environment.SERVER_ENV: " MMS ",
            environment.MULTI_MODEL_ENV: "True",
            environment.BIND_HOST_ENV: "127.0.0.1",
            environment.PORT_ENV: "9000",
            environment.WORKERS_ENV: "3",
            environment.TIMEOUT_ENV: "20",
            environment.MAX_PERIOD_ENV: "30",
            environment.MAX_PAYLOAD_ENV: "1",
            environment.MEMORY_ENV: "512.5",
            environment.THREADS_ENV: "2",
            environment.WORKER_CACHE_ENV: "10",
            environment.MAX_MODELS_ENV: "5",
            environment.MIN_FREE_ENV: "0",
            environment.VMARGS_ENV: "-Xmx1g",
        }
    )
    assert settings == ServingEnvironment(
        server="mms",
        multi_model=True,
        host="127.0.0.1",
        port=9000,
        workers=3,
        timeout_seconds=20,
        limits=Limits(max_period=30, max_payload_bytes=1 * MB),
        memory_mb=512.5,
        lean_threads=2,
        worker_cache_models=10,
        max_models=5,
        min_free_bytes=0,
        vmargs="-Xmx1g",
    )


def test_command_line_host_and_port_win():
    settings = ServingEnvironment.read({environment.PORT_ENV: "9000"}, host="::1", port=7000)
    assert (settings.host, settings.port) == ("::1", 7000)


def test_only_true_turns_multi_model_on():
    for value, expected in (("true", True), (" TRUE ", True), ("false", False), ("1", False), ("", False)):
        assert ServingEnvironment.read({environment.MULTI_MODEL_ENV: value}).multi_model is expected


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        (environment.SERVER_ENV, "tomcat", "is not a server"),
        (environment.PORT_ENV, "80000", "is not a TCP port"),
        (environment.PORT_ENV, "http", "is not a TCP port"),
        (environment.WORKERS_ENV, "0", "must be a positive integer"),
        (environment.MAX_PERIOD_ENV, "-1", "must be a positive integer"),
        (environment.MAX_PAYLOAD_ENV, "many", "must be a positive integer"),
        (environment.MEMORY_ENV, "-5", "must be a positive number of megabytes"),
        (environment.MIN_FREE_ENV, "lots", "must be a whole number of MB"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(name, value, fragment):
    with pytest.raises(ValueError, match=rf"{name}='{value}' {fragment}"):
        ServingEnvironment.read({name: value})


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv(environment.MAX_PERIOD_ENV, "3")
    assert ServingEnvironment.read().limits.max_period == 3
