"""Forecast quality on half-hourly demand: the shipped model and every Prophet candidate against naive.

    python -m bench.quality [--weeks 12] [--seeds 0-19] [--holdout-days 7]

First the real series: Taylor's 12 weeks of England and Wales demand in summer 2000 (bench/taylor.py), the
issue's "real half-hourly demand". Then, for each seed, `fleetcast.data.demand` simulates `--weeks` of
half-hourly regional demand (day-type load shapes, weather-driven level drift, moving sunset, noise). For
each series, in one process:
- `fleetcast train` with its defaults (selection by rolling-origin CV, a `--holdout-days` holdout: 336
  steps for 7 days) ships one model; its holdout sMAPE is compared with seasonal-naive's on the same
  steps (the ratio must be <= 1: the shipped model is never worse than naive);
- each Prophet candidate `train` would consider is fitted on the same rows before the holdout and scored
  on it; the best of them must be within 1.3x of naive;
- the blend candidate (`model/blend.py`) at each of its weightings, its Prophet part the Prophet candidate
  that scored best in train's cross-validation, is scored on the holdout too (for the record: train ships
  one weighting, chosen by cross-validation, never by these numbers);
- for a simulated series, the simulator's own conditional mean (`expected_demand`), the best forecast there
  can be, is scored on the same holdout: the yardstick. On a week where even it loses to naive, last week
  happened to repeat.
The targets are issue 9's; every number is a ratio to naive measured in the same run. The closing summary
counts the series where the shipped model is no worse than naive, beside the same count for the
conditional mean.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import taylor
from fleetcast.data.demand import STEPS_PER_DAY, expected_demand, half_hourly_demand
from fleetcast.logs import quiet_third_party
from fleetcast.training import evaluate

SHIPPED_TARGET = 1.0  # the shipped model is never worse than naive
PROPHET_TARGET = 1.3  # Prophet's best candidate is within 1.3x of naive
REAL_ORIGINS = 6  # the real series' last weeks, each taken as the holdout in turn


@dataclass(frozen=True)
class Quality:
    shipped: str  # the candidate train chose
    shipped_smape: float
    naive_smape: float
    candidates: dict[str, float]  # Prophet candidate -> holdout sMAPE
    blends: dict[str, float]  # the blend at each weighting -> holdout sMAPE
    seconds: float  # train's wall time
    expected_smape: float = float("nan")  # the simulator's conditional mean, when known

    @property
    def expected_ratio(self) -> float:
        return self.expected_smape / self.naive_smape

    @property
    def shipped_ratio(self) -> float:
        return self.shipped_smape / self.naive_smape

    @property
    def best_prophet(self) -> tuple[str, float]:
        name = min(self.candidates, key=self.candidates.__getitem__)
        return name, self.candidates[name] / self.naive_smape


def measure(
    ds: np.ndarray, y: np.ndarray, workdir: Path, holdout_days: int = 7, expected: np.ndarray | None = None
) -> Quality:
    """`fleetcast train` on one series (in this process), plus every Prophet candidate on its holdout (and
    `expected`, a forecast of the holdout steps to score beside them, when given)."""
    from fleetcast.cli import main
    from fleetcast.model import archive, blend
    from fleetcast.model.fit import engine
    from fleetcast.model.settings import ProphetSettings
    from fleetcast.training import selection
    from fleetcast.training.config import CANDIDATE_NAMES
    from fleetcast.training.inputs import History

    config = workdir / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(f'{{"holdout_days": "{holdout_days}", "workers": "1"}}')
    channel = workdir / "input" / "data" / "train" / "demand"
    channel.mkdir(parents=True)
    stamps = pd.DatetimeIndex(ds).strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": stamps, "consumption": np.round(y, 3)}).to_csv(
        channel / "data.csv", index=False
    )
    previous = os.environ.get("SAGEMAKER_BASE_DIR")
    os.environ["SAGEMAKER_BASE_DIR"] = str(workdir)
    began = time.perf_counter()
    try:
        if main(["train"]) != 0:
            raise RuntimeError("fleetcast train failed")
    finally:
        if previous is None:
            os.environ.pop("SAGEMAKER_BASE_DIR")
        else:
            os.environ["SAGEMAKER_BASE_DIR"] = previous
    seconds = time.perf_counter() - began
    _, metadata = archive.read_archive(workdir / "checkpoints" / archive.archive_name("demand"))

    # The CSV's rounding, as train read it.
    history = History(ds=np.asarray(ds, dtype="datetime64[ns]"), y=np.round(y, 3))
    split = evaluate.split_holdout(history, holdout_days)
    scores, forecasts = {}, {}
    for candidate in selection.candidate_set(
        split.train, ProphetSettings(), CANDIDATE_NAMES, len(CANDIDATE_NAMES)
    ):
        if not candidate.needs_fit:  # the baseline, and the blend (the shipped one is scored by train)
            continue
        outcome = selection.fit_candidate(candidate, split.train, engine.AUTO, label=candidate.name)
        forecast = selection.forecast_candidate(candidate, outcome, split.train, split.holdout)
        scores[candidate.name] = evaluate.smape(split.holdout.y, forecast)
        if not candidate.is_change:
            forecasts[candidate.name] = forecast
    cv = metadata["selection"]["cv_smape"]
    # What train's blend is made of: the Prophet candidate (of those train fitted) that scored best in CV.
    part = min((name for name in forecasts if cv.get(name) is not None), key=lambda name: cv[name])
    blends = {
        f"blend {part} {weights.name}": evaluate.smape(
            split.holdout.y,
            blend.forecast_values(forecasts[part], split.train.ds, split.train.y, split.holdout.ds, weights),
        )
        for weights in blend.WEIGHTS
    }
    if expected is not None and len(expected) != len(split.holdout.y):
        raise ValueError(f"expected has {len(expected)} values for {len(split.holdout.y)} holdout steps")
    metrics = metadata["metrics"]
    shipped = metadata["model"]
    if archive.model_kind(metadata) == archive.BLEND_KIND:
        shipped += f" ({metadata['selection']['blend_of']}, {metadata['blend']['name']})"
    return Quality(
        shipped=shipped,
        shipped_smape=metrics["smape"],
        naive_smape=metrics["naive_smape"],
        candidates=scores,
        blends=blends,
        seconds=seconds,
        expected_smape=float("nan") if expected is None else evaluate.smape(split.holdout.y, expected),
    )


def seed_list(text: str) -> list[int]:
    """`0,1,2`, `0-19` or a mix of both (`0-4,9`)."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def report(label: str, quality: Quality) -> None:
    best, best_ratio = quality.best_prophet
    ok = quality.shipped_ratio <= SHIPPED_TARGET and best_ratio <= PROPHET_TARGET
    known = "" if np.isnan(quality.expected_smape) else f"conditional mean {quality.expected_ratio:.3f}x; "
    print(
        f"{label}: naive sMAPE {quality.naive_smape:.3f}%; shipped {quality.shipped} "
        f"{quality.shipped_smape:.3f}% ({quality.shipped_ratio:.3f}x naive, target <= "
        f"{SHIPPED_TARGET:g}); best Prophet {best} {quality.candidates[best]:.3f}% ({best_ratio:.2f}x, "
        f"target <= {PROPHET_TARGET:g}); {known}train {quality.seconds:.1f} s {'ok' if ok else 'MISSED'}"
    )
    for name, score in sorted({**quality.candidates, **quality.blends}.items(), key=lambda item: item[1]):
        print(f"    {name:45s} {score:7.3f}%  {score / quality.naive_smape:5.2f}x naive")


def real_series(holdout_days: int) -> None:
    """The real series: its holdout, last week's error week by week, and each of its last weeks as the
    holdout in turn (one holdout week is one draw; the series cut after each of its last weeks gives more)."""
    ds, y = taylor.load()
    week = holdout_days * STEPS_PER_DAY
    rolling = {}  # weeks kept -> quality; the last entry is the whole series
    for weeks in range(len(y) // week - REAL_ORIGINS + 1, len(y) // week + 1):
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            rolling[weeks] = measure(ds[: weeks * week], y[: weeks * week], Path(tmp), holdout_days)
    report("real demand (Taylor, England and Wales 2000)", rolling[len(y) // week])
    repeats = [
        evaluate.smape(y[end - week : end], y[end - 2 * week : end - week])
        for end in range(2 * week, len(y) + 1, week)
    ]
    print("    naive (last week's values) sMAPE, week by week: " + " ".join(f"{e:.2f}%" for e in repeats))
    for weeks, quality in rolling.items():
        print(
            f"    holdout week {weeks} (trained on weeks 1-{weeks - 1}): shipped {quality.shipped} "
            f"{quality.shipped_ratio:.3f}x naive, best Prophet {quality.best_prophet[1]:.2f}x"
        )
    qualities = list(rolling.values())
    print(
        f"real series, each of its last {REAL_ORIGINS} weeks as the holdout: shipped no worse than naive on "
        f"{sum(q.shipped_ratio <= SHIPPED_TARGET for q in qualities)}, best Prophet within "
        f"{PROPHET_TARGET:g}x on {sum(q.best_prophet[1] <= PROPHET_TARGET for q in qualities)}; mean ratio "
        f"to naive: shipped {np.mean([q.shipped_ratio for q in qualities]):.3f}, best Prophet "
        f"{np.mean([q.best_prophet[1] for q in qualities]):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--seeds", type=seed_list, default=seed_list("0-19"), help="e.g. 0-19 or 0,2,5")
    parser.add_argument("--holdout-days", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_third_party()
    logging.getLogger("fleetcast").setLevel(logging.WARNING)
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.weeks} weeks half-hourly (simulated), "
        f"{args.holdout_days}-day holdout"
    )
    real_series(args.holdout_days)
    results = []
    for seed in args.seeds:
        ds, y = half_hourly_demand(args.weeks, seed)
        origin = len(y) - args.holdout_days * STEPS_PER_DAY
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            quality = measure(ds, y, Path(tmp), args.holdout_days, expected_demand(args.weeks, seed, origin))
        results.append(quality)
        report(f"seed {seed}", quality)
    count = len(results)
    shipped = np.array([q.shipped_ratio for q in results])
    prophet = np.array([q.best_prophet[1] for q in results])
    expected = np.array([q.expected_ratio for q in results])
    print(
        f"{count} simulated series: shipped no worse than naive on {np.sum(shipped <= SHIPPED_TARGET)} "
        f"(the conditional mean on {np.sum(expected <= SHIPPED_TARGET)}); best Prophet within "
        f"{PROPHET_TARGET:g}x on {np.sum(prophet <= PROPHET_TARGET)}; mean ratio to naive: shipped "
        f"{shipped.mean():.3f}, best Prophet {prophet.mean():.3f}, conditional mean {expected.mean():.3f}"
    )


if __name__ == "__main__":
    main()
