"""MetricDefinitions against the real progress lines `train` logs; the hyperparameter table launch checks.

The lines come from the job's own formatter (FleetProgress), so a field renamed there, or a regex changed
in fleetcast.training.log_metrics, fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from array import array
from dataclasses import asdict
from pathlib import Path

import pytest

from fleetcast.model.settings import ProphetSettings
from fleetcast.training.config import HYPERPARAMETERS, JobSettings
from fleetcast.training.customer import FAILED, SKIPPED, TRAINED
from fleetcast.training.fleet import FleetProgress
from fleetcast.training.log_metrics import METRIC_DEFINITIONS
from launch.common import LaunchError
from launch.train import hyperparameters_from

LOG_PREFIX = "2026-11-25 21:40:03 INFO fleetcast.training.fleet: "  # as the lines appear in CloudWatch


def progress(
    total: int, trained: int, failed: int, skipped: int, seconds: float, smapes=(), naive=(), beats=0, fits=0
):
    """A FleetProgress in the state a real job reaches, `seconds` after it started."""
    state = FleetProgress(total=total, started=time.perf_counter() - seconds)
    state.counts = {TRAINED: trained, FAILED: failed, SKIPPED: skipped}
    state.processed = trained + failed + skipped
    state.smapes, state.naive_smapes = array("d", smapes), array("d", naive)
    state.beats_naive, state.fits = beats, fits
    return state


def _extract(line: str) -> dict[str, str | None]:
    values = {}
    for metric in METRIC_DEFINITIONS:
        match = re.search(metric["Regex"], line)
        values[metric["Name"]] = match.group(1) if match else None
    return values


def test_every_metric_reads_the_right_number_from_the_real_lines() -> None:
    running = progress(1000, 333, 2, 5, 13.9, smapes=[12.3, 14.0, 9.9], naive=[15.2])
    done = progress(1000, 998, 2, 0, 41.2, smapes=[11.9, 12.0, 20.0, 9.0], naive=[15.2], beats=3, fits=13972)
    during, final = _extract(LOG_PREFIX + running.line()), _extract(LOG_PREFIX + done.final_line())
    assert float(during.pop("fleet:models_per_second")) == pytest.approx(333 / 13.9, abs=0.1)
    assert during == {
        "fleet:customers_processed": "340",
        "fleet:customers_trained": None,
        "fleet:customers_total": "1000",
        "fleet:customers_failed": "2",
        "fleet:customers_skipped": "5",
        "fleet:median_smape": "12.3",
        "fleet:naive_smape": None,
        "fleet:seconds": None,
        "fleet:beats_naive_percent": None,
        "fleet:fits_per_customer": None,
    }
    assert float(final.pop("fleet:models_per_second")) == pytest.approx(998 / 41.2, abs=0.1)
    assert float(final.pop("fleet:seconds")) == pytest.approx(41.2, abs=0.1)
    assert final == {
        "fleet:customers_processed": None,
        "fleet:customers_trained": "998",
        "fleet:customers_total": "1000",
        "fleet:customers_failed": "2",
        "fleet:customers_skipped": "0",
        "fleet:median_smape": "11.9",
        "fleet:naive_smape": "15.2",
        "fleet:beats_naive_percent": "75.0",
        "fleet:fits_per_customer": "14.0",
    }


def test_each_regex_has_one_group_and_fits_the_api_limits() -> None:
    for metric in METRIC_DEFINITIONS:
        assert re.compile(metric["Regex"]).groups == 1, metric
        assert 1 <= len(metric["Regex"]) <= 500 and 1 <= len(metric["Name"]) <= 255


def test_no_holdout_yet_gives_no_smape_rather_than_a_wrong_number() -> None:
    values = _extract(progress(1000, 10, 0, 0, 3.3).line())  # no sMAPE yet: the line says n/a
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


def test_every_hyperparameter_train_accepts_passes_launch() -> None:
    # Each key at its default, spelled as SageMaker sends it: a key added to the package's table needs no
    # launch change, and launch refuses what the job would refuse.
    defaults = {**asdict(ProphetSettings()), **asdict(JobSettings())}
    assert set(defaults) == set(HYPERPARAMETERS)
    for key, value in defaults.items():
        text = "" if value == () else str(value)  # an empty list (regressors) is spelled as nothing
        assert hyperparameters_from([f"{key}={text}"]) == {key: text}
    with pytest.raises(LaunchError, match="unknown hyperparameter 'holdout_dayz'"):
        hyperparameters_from(["holdout_dayz=3"])
    with pytest.raises(LaunchError, match="hyperparameter min_rows='1': must be >= 2"):
        hyperparameters_from(["min_rows=1"])


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
