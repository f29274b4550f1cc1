"""The numbers on the fleet report: counts, throughput, accuracy against seasonal-naive, worst customers.

A customer is scored when its report row has both the holdout sMAPE and seasonal-naive's. Its ratio is
sMAPE / naive sMAPE (below 1: the model beats naive); a naive score of zero makes any error infinitely
worse. The worst customers are those with the highest ratio: where the model loses most to the baseline,
which is what a person can fix (a noisy customer that every method forecasts badly is not among them).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from fleetcast.report.training_output import TrainingOutput, number
from fleetcast.training.customer import FAILED, SKIPPED, TRAINED

WORST_COUNT = 10


@dataclass(frozen=True)
class Scored:
    customer: str
    smape: float
    naive_smape: float
    model: str
    trained: bool = True  # False: kept from an earlier run (its archive lives in that run's folder)

    @property
    def ratio(self) -> float:
        if self.naive_smape > 0:
            return self.smape / self.naive_smape
        return math.inf if self.smape > 0 else 1.0


@dataclass(frozen=True)
class FleetStats:
    customers: int
    counts: dict[str, int]  # trained, skipped, failed
    hosts: int
    models_per_second: float | None  # all hosts together (they train at the same time)
    elapsed_seconds: float | None  # the slowest host's
    scored: list[Scored]
    median_smape: float | None
    median_naive_smape: float | None
    beats_naive_share: float | None
    worst: list[Scored]
    failures: list[tuple[str, str]]  # (customer, reason)
    worst_trained_only: bool = False  # the worst are ranked among the customers this run trained

    @property
    def median_ratio(self) -> float | None:
        if self.median_smape is None or not self.median_naive_smape:
            return None
        return self.median_smape / self.median_naive_smape


def fleet_stats(
    output: TrainingOutput, worst_count: int = WORST_COUNT, worst_trained_only: bool = False
) -> FleetStats:
    """The page's numbers. `worst_trained_only`: the worst among the customers this run trained (a page
    drawn inside the job, whose checkpoint folder holds only those customers' archives)."""
    counts = {TRAINED: 0, SKIPPED: 0, FAILED: 0}
    scored: list[Scored] = []
    failures: list[tuple[str, str]] = []
    for row in output.rows:
        status = row.get("status", "")
        counts[status] = counts.get(status, 0) + 1
        if status == FAILED:
            failures.append((row.get("customer", ""), row.get("reason", "")))
        smape, naive = number(row.get("smape")), number(row.get("naive_smape"))
        if status != FAILED and smape is not None and naive is not None:
            scored.append(Scored(row["customer"], smape, naive, row.get("model", ""), status == TRAINED))
    summaries = list(output.summaries.values())
    rates = [s["models_per_second"] for s in summaries if isinstance(s.get("models_per_second"), int | float)]
    elapsed = [s["elapsed_seconds"] for s in summaries if isinstance(s.get("elapsed_seconds"), int | float)]
    ranked = [s for s in scored if s.trained or not worst_trained_only]
    worst = sorted(ranked, key=lambda s: (s.ratio, s.smape), reverse=True)[:worst_count]
    return FleetStats(
        customers=len(output.rows),
        counts=counts,
        hosts=max(len(output.report_files), len(summaries)),
        models_per_second=sum(rates) if rates else None,
        elapsed_seconds=max(elapsed) if elapsed else None,
        scored=scored,
        median_smape=statistics.median(s.smape for s in scored) if scored else None,
        median_naive_smape=statistics.median(s.naive_smape for s in scored) if scored else None,
        beats_naive_share=sum(s.smape < s.naive_smape for s in scored) / len(scored) if scored else None,
        worst=worst,
        failures=sorted(failures),
        worst_trained_only=worst_trained_only,
    )


def holdout_days(output: TrainingOutput) -> int:
    """The job's holdout length (from any host's summary), 0 when unknown or off."""
    for summary in output.summaries.values():
        days = (summary.get("job") or {}).get("holdout_days")
        if isinstance(days, int):
            return days
    return 0
