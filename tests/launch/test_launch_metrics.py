"""MetricDefinitions against `train`'s progress line formats; the hyperparameter names train accepts."""

from __future__ import annotations

import re

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
