"""MetricDefinitions against `train`'s progress line formats; the hyperparameter names train accepts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from launch.train import HYPERPARAMETERS, METRIC_DEFINITIONS, hyperparameters_from

# The two line formats `fleetcast train` logs (the contract in helpers/COMMON.md), behind a logging prefix
# as they appear in CloudWatch.
PROGRESS = (
    "2026-11-25 21:40:03 INFO fleetcast.training.fleet: "
    "trained 340/1000 customers, 24.1 models/s, 2 failed, 5 skipped, median sMAPE 12.3%"
)
FINAL = (
    "2026-11-25 21:40:44 INFO fleetcast.training.fleet: "
    "fleet done: 998 trained, 2 failed, 0 skipped of 1000 in 41.2s, 24.3 models/s, "
    "median sMAPE 11.9%, naive sMAPE 15.2%"
)
EXPECTED = {
    PROGRESS: {
        "fleet:customers_processed": "340",
        "fleet:customers_trained": None,
        "fleet:customers_total": "1000",
        "fleet:customers_failed": "2",
        "fleet:customers_skipped": "5",
        "fleet:models_per_second": "24.1",
        "fleet:median_smape": "12.3",
        "fleet:naive_smape": None,
        "fleet:seconds": None,
    },
    FINAL: {
        "fleet:customers_processed": None,
        "fleet:customers_trained": "998",
        "fleet:customers_total": "1000",
        "fleet:customers_failed": "2",
        "fleet:customers_skipped": "0",
        "fleet:models_per_second": "24.3",
        "fleet:median_smape": "11.9",
        "fleet:naive_smape": "15.2",
        "fleet:seconds": "41.2",
    },
}


def _extract(line: str) -> dict[str, str | None]:
    values = {}
    for metric in METRIC_DEFINITIONS:
        match = re.search(metric["Regex"], line)
        values[metric["Name"]] = match.group(1) if match else None
    return values


@pytest.mark.parametrize("line", [PROGRESS, FINAL], ids=["progress", "final"])
def test_every_metric_reads_the_right_number(line: str) -> None:
    assert _extract(line) == EXPECTED[line]


def test_each_regex_has_one_group_and_fits_the_api_limits() -> None:
    for metric in METRIC_DEFINITIONS:
        assert re.compile(metric["Regex"]).groups == 1, metric
        assert 1 <= len(metric["Regex"]) <= 500 and 1 <= len(metric["Name"]) <= 255


def test_no_holdout_yet_gives_no_smape_rather_than_a_wrong_number() -> None:
    line = "trained 10/1000 customers, 3.0 models/s, 0 failed, 0 skipped, median sMAPE n/a"
    values = _extract(line)
    assert values["fleet:median_smape"] is None
    assert values["fleet:customers_processed"] == "10"


def test_other_log_lines_do_not_feed_the_fleet_metrics() -> None:
    noise = [
        "customer 17 failed: only 3 rows (min_rows 14)",
        "2 failed uploads were retried",
        "host algo-2 of 4: 250 customers in /opt/ml/input/data/train",
        "resuming: 120 models already in /opt/ml/checkpoints",
    ]
    for line in noise:
        assert {name: value for name, value in _extract(line).items() if value is not None} == {}, line


def test_launch_knows_exactly_the_hyperparameters_train_accepts() -> None:
    from fleetcast.training.config import HYPERPARAMETERS as ACCEPTED_BY_TRAIN

    assert set(ACCEPTED_BY_TRAIN) == HYPERPARAMETERS


def test_hyperparameters_go_out_as_strings() -> None:
    values = hyperparameters_from(["holdout_days=28", "yearly_seasonality=false", "interval_width=0.9"])
    assert values == {"holdout_days": "28", "yearly_seasonality": "false", "interval_width": "0.9"}


@pytest.mark.slow
def test_metric_definitions_read_a_real_train_run(tmp_path: Path) -> None:
    """Run the real `fleetcast train` (as the image does) and read its log with the MetricDefinitions."""
    from tests.helpers import write_flat_layout

    root = tmp_path / "opt_ml"
    channel = root / "input" / "data" / "train"
    write_flat_layout(channel, range(3))
    (channel / "tiny.csv").write_text(
        "2022-01-01 00:00:00,1.0\n2022-01-02 00:00:00,2.0\n"
    )  # too short: fails
    (root / "input" / "config").mkdir(parents=True)
    hyperparameters = {
        "workers": "2",
        "uncertainty_samples": "0",
        "progress_seconds": "0.01",
        "max_failure_rate": "0.5",
    }
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(root)}
    run = subprocess.run(
        [sys.executable, "-m", "fleetcast.cli", "train"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    log = (run.stdout + run.stderr).splitlines()  # SageMaker sends both streams to CloudWatch
    summary = json.loads((root / "model" / "fleet-summary-algo-1.json").read_text())
    counts = summary["counts"]
    assert counts["failed"] == 1 and counts["trained"] == 3

    (final_line,) = [line for line in log if "fleet done:" in line]
    final = _extract(final_line)
    assert final["fleet:customers_trained"] == str(counts["trained"])
    assert final["fleet:customers_failed"] == str(counts["failed"])
    assert final["fleet:customers_skipped"] == str(counts["skipped"])
    assert final["fleet:customers_total"] == str(summary["customers"])
    assert float(final["fleet:models_per_second"]) > 0
    assert float(final["fleet:seconds"]) > 0
    assert final["fleet:median_smape"] is not None and final["fleet:naive_smape"] is not None

    progress = [_extract(line) for line in log if "customers, " in line and "models/s" in line]
    assert progress, "train logged no progress line"
    for values in progress:
        assert values["fleet:customers_total"] == str(summary["customers"])
        assert 0 < int(values["fleet:customers_processed"]) <= summary["customers"]
        assert values["fleet:customers_trained"] is None
