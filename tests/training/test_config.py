import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetcast.paths import SageMakerPaths
from fleetcast.training.config import (
    ConfigError,
    ProphetSettings,
    parse_hyperparameters,
    read_hyperparameters,
    read_resource_config,
)


def test_defaults_when_no_hyperparameters():
    config = parse_hyperparameters({})
    assert config.prophet == ProphetSettings()
    assert config.job.channel == "train"
    assert config.job.holdout_days == 7


def test_string_values_are_parsed_into_types():
    config = parse_hyperparameters(
        {
            "seasonality_mode": "Multiplicative",
            "weekly_seasonality": "5",
            "yearly_seasonality": "false",
            "daily_seasonality": "auto",
            "changepoint_prior_scale": "0.5",
            "uncertainty_samples": "0",
            "workers": "3",
            "holdout_days": "0",
            "max_failure_rate": "0.25",
            "growth": "flat",
        }
    )
    assert config.prophet.seasonality_mode == "multiplicative"
    assert config.prophet.weekly_seasonality == 5
    assert config.prophet.yearly_seasonality is False
    assert config.prophet.daily_seasonality == "auto"
    assert config.prophet.changepoint_prior_scale == 0.5
    assert config.prophet.uncertainty_samples == 0
    assert config.prophet.growth == "flat"
    assert (config.job.workers, config.job.holdout_days, config.job.max_failure_rate) == (3, 0, 0.25)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("growth", "logistic", "must be one of linear, flat"),
        ("seasonality_mode", "both", "must be one of additive, multiplicative"),
        ("weekly_seasonality", "0", "positive Fourier order"),
        ("weekly_seasonality", "yes", "weekly_seasonality='yes'"),
        ("interval_width", "1", "must be in (0, 1)"),
        ("changepoint_prior_scale", "-1", "must be in (0"),
        ("changepoint_prior_scale", "nan", "must be in (0"),
        ("workers", "two", "workers='two': is not a valid value"),
        ("holdout_days", "-1", "must be between 0 and 3650"),
        ("max_failure_rate", "1.5", "must be in [0, 1]"),
        ("min_rows", "1", "must be >= 2"),
        ("channel", "../x", "channel name"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError) as raised:
        parse_hyperparameters({key: value})
    assert key in str(raised.value)
    assert message in str(raised.value)


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'seasonlity_mode'"):
        parse_hyperparameters({"seasonlity_mode": "additive"})


def test_keys_sagemaker_adds_are_ignored():
    config = parse_hyperparameters({"sagemaker_region": "us-east-1", "_tuning_objective_metric": "x"})
    assert config == parse_hyperparameters({})


def test_fingerprint_tracks_model_settings_only():
    base = parse_hyperparameters({})
    assert (
        base.fingerprint() == parse_hyperparameters({"workers": "1", "max_failure_rate": "0.5"}).fingerprint()
    )
    assert base.fingerprint() != parse_hyperparameters({"changepoint_prior_scale": "0.1"}).fingerprint()
    assert base.fingerprint() != parse_hyperparameters({"holdout_days": "14"}).fingerprint()


def test_the_fingerprint_of_a_selected_model_changes_with_the_candidates(monkeypatch):
    from fleetcast.training import config

    selected, configured = parse_hyperparameters({}), parse_hyperparameters({"selection": "off"})
    before = selected.fingerprint(), configured.fingerprint()
    monkeypatch.setattr(config, "CANDIDATE_NAMES", (*config.CANDIDATE_NAMES, "a-new-candidate"))
    more = selected.fingerprint()
    assert more != before[0]  # resume retrains what was chosen among fewer candidates
    monkeypatch.setattr(config, "CANDIDATES_VERSION", config.CANDIDATES_VERSION + 1)
    assert selected.fingerprint() not in (before[0], more)  # or among differently defined ones
    assert configured.fingerprint() == before[1]  # selection=off trains the configured model only


def test_resource_config_must_name_a_listed_host(tmp_path: Path):
    paths = SageMakerPaths(tmp_path)
    paths.input_config_dir.mkdir(parents=True)
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-3", "hosts": ["algo-2", "algo-1"]})
    )
    with pytest.raises(ConfigError, match="not in hosts"):
        read_resource_config(paths)
    paths.resource_config_file.write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-2", "algo-1"]})
    )
    assert read_resource_config(paths).hosts == ["algo-1", "algo-2"]
    assert read_resource_config(paths).host_index == 1


def test_malformed_json_is_a_clear_error(tmp_path: Path):
    paths = SageMakerPaths(tmp_path)
    paths.input_config_dir.mkdir(parents=True)
    paths.hyperparameters_file.write_text("{not json")
    with pytest.raises(ConfigError, match=r"hyperparameters\.json is not valid JSON"):
        read_hyperparameters(paths)


def test_our_reading_matches_the_official_training_toolkit(tmp_path: Path):
    """sagemaker-training's Environment is the reference reader of the same files: we must agree with it."""
    paths = SageMakerPaths(tmp_path)
    paths.input_config_dir.mkdir(parents=True)
    hyperparameters = {"seasonality_mode": "multiplicative", "holdout_days": "14", "workers": "2"}
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters))
    paths.resource_config_file.write_text(
        json.dumps(
            {
                "current_host": "algo-2",
                "hosts": ["algo-1", "algo-2", "algo-3"],
                "network_interface_name": "eth0",
            }
        )
    )
    paths.input_data_config_file.write_text(
        json.dumps({"train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}})
    )
    paths.channel_dir("train").mkdir(parents=True)
    probe = (
        "import json; from sagemaker_training import environment as e; env = e.Environment(); "
        "print(json.dumps({'hosts': env.hosts, 'current_host': env.current_host, "
        "'hp': env.hyperparameters, 'channel': env.channel_input_dirs['train']}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"SAGEMAKER_BASE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    official = json.loads(out.stdout.strip().splitlines()[-1])
    ours = read_resource_config(paths)
    assert (ours.current_host, ours.hosts) == (official["current_host"], official["hosts"])
    assert official["channel"] == str(paths.channel_dir("train"))
    config = read_hyperparameters(paths)
    assert config.prophet.seasonality_mode == official["hp"]["seasonality_mode"]
    assert config.job.holdout_days == int(official["hp"]["holdout_days"])
