"""The training job's metrics as SageMaker reads them: regexes over the progress lines `train` logs.

A job's `MetricDefinitions` are regexes matched against the container's log lines; each regex's first group
is the value. They read the two lines `FleetProgress` formats (training/fleet.py):

    trained 340/1000 customers, 24.1 models/s, 2 failed, 5 skipped, median sMAPE 12.3%
    fleet done: 998 trained, 2 failed, 0 skipped of 1000 in 41.2s, 24.3 models/s, median sMAPE 11.9%,
      naive sMAPE 13.0%, beats naive 88.2%, 14.0 fits/customer

`launch train` sends this table as it is; tests/launch/test_launch_metrics.py formats the real lines and
reads every metric back, so a renamed field in either line fails there. Kept free of heavy imports: launch
imports it on every command.
"""

from __future__ import annotations

METRIC_DEFINITIONS: list[dict[str, str]] = [
    # Progress lines count customers processed so far (trained, failed or skipped); the final line says
    # how many were trained.
    {"Name": "fleet:customers_processed", "Regex": r"\btrained (\d+)/\d+ customers"},
    {"Name": "fleet:customers_trained", "Regex": r"fleet done: (\d+) trained"},
    {"Name": "fleet:customers_total", "Regex": r"(?:/|skipped of )(\d+)(?: customers,| in )"},
    {"Name": "fleet:customers_failed", "Regex": r"(?:models/s|trained), (\d+) failed"},
    {"Name": "fleet:customers_skipped", "Regex": r"failed, (\d+) skipped"},
    {"Name": "fleet:models_per_second", "Regex": r"(?:customers|s), ([0-9.]+) models/s"},
    {"Name": "fleet:median_smape", "Regex": r"median sMAPE ([0-9.]+)%"},
    {"Name": "fleet:naive_smape", "Regex": r"naive sMAPE ([0-9.]+)%"},
    {"Name": "fleet:seconds", "Regex": r"skipped of \d+ in ([0-9.]+)s,"},
    {"Name": "fleet:beats_naive_percent", "Regex": r"beats naive ([0-9.]+)%"},
    {"Name": "fleet:fits_per_customer", "Regex": r"([0-9.]+) fits/customer"},
]
