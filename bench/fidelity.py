"""Fidelity and speed of the in-process fit engine against stock Prophet (Stan), in one run.

    python -m bench.fidelity [--series 1000]
    python -m bench.fidelity --drivers [--series 350]

Fits every series of the fidelity corpus (seed fleet, gappy, short, hourly, half-hourly, multiplicative,
flat, level shifts, custom Fourier orders) with stock `Prophet.fit` and with the engine's `auto` path, and
prints: counts, the 7-step yhat difference (median, 99th percentile, share within 2 %), the log-posterior
comparison, every series beyond 2 %, and the time per series of both (the ratio is measured in this run).
Then, on daily seed series, a timing split of the engine: preparation, solve, JSON, against
Prophet.fit + model_to_json. `--drivers` runs the same report on the corpus with country holidays and
regressors instead (US, DE, GB, FR calendars; additive and multiplicative temperature; a 0/1 regressor;
daily and hourly; flat growth), the forecasts given the regressors' real future values.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from fleetcast.data.generate import customer_series
from fleetcast.logs import quiet_third_party
from fleetcast.model import prophet_model
from fleetcast.model.fit import engine, solver
from fleetcast.model.fit.problem import FitProblem
from fleetcast.model.settings import ProphetSettings
from tests.support import fit_fidelity as fidelity


def fidelity_report(total: int, drivers: bool = False) -> None:
    comparisons = []
    began = time.perf_counter()
    cases = fidelity.driver_corpus(total) if drivers else fidelity.corpus(total)
    for number, case in enumerate(cases, start=1):
        comparisons.append(fidelity.compare(case))
        if number % 100 == 0:
            print(f"  ... {number} series ({time.perf_counter() - began:.0f} s)", flush=True)
    summary = fidelity.Summary(comparisons)
    exact = summary.exact
    print(
        f"series: {len(comparisons)}   fitted in process: {len(exact)}   fell back to Stan: "
        f"{len(comparisons) - len(exact)}"
    )
    for c in comparisons:
        if c.engine_used != engine.EXACT:
            print(f"  fallback {c.name}: {c.fallback_reason}")
    gains = np.array([(c.lp_ours - c.lp_stan) / abs(c.lp_stan) for c in exact])
    print(
        f"7-step yhat |ours - stan| / |stan|: median {summary.median_diff():.4%}   "
        f"99th pct {summary.percentile_diff(99):.4%}   max {summary.percentile_diff(100):.4%}   "
        f"within 2 %: {summary.share_within():.2%}"
    )
    print(
        f"log posterior: ours >= Stan - 1e-6 rel on {len(exact) - len(summary.lp_failures)}/{len(exact)}; "
        f"ours higher on {int(np.sum(gains > 0))}; relative gain median {np.median(gains):.2e}, "
        f"max {np.max(gains):.2e}, min {np.min(gains):.2e}"
    )
    beyond = summary.beyond_tolerance
    print(f"series beyond 2 %: {len(beyond)}")
    for c in beyond:
        verdict = "Stan stopped short" if c.stan_stopped_short else "UNEXPLAINED"
        print(
            f"  {c.name}: yhat {c.yhat_rel_diff:.2%}, lp ours {c.lp_ours:.4f} vs Stan {c.lp_stan:.4f} "
            f"({verdict})"
        )
    ours = np.array([c.solve_seconds for c in comparisons])
    stan = np.array([c.stan_seconds for c in comparisons])
    print(
        f"per series (fit, no JSON): engine {ours.mean() * 1e3:.2f} ms, Stan {stan.mean() * 1e3:.2f} ms, "
        f"ratio {stan.sum() / ours.sum():.1f}x"
    )
    failures = summary.failures()
    print("fidelity targets: " + ("all met" if not failures else f"{len(failures)} NOT met"))
    for line in failures:
        print(f"  {line}")


def timing_split(customers: int) -> None:
    """Per daily seed customer (365 rows): engine prep / solve / JSON against Prophet.fit + JSON."""
    settings = ProphetSettings()
    grid = pd.date_range("2022-01-01", periods=365, freq="D")
    frames = [
        pd.DataFrame(dict(zip(("ds", "y"), customer_series(c, 42, grid, 365), strict=True)))
        for c in range(customers)
    ]
    prep = solve = json_time = total = 0.0
    for frame in frames:
        t0 = time.perf_counter()
        model = prophet_model.new_prophet(settings)
        inputs = model.preprocess(frame)
        problem = FitProblem.from_model_inputs(inputs, model.calculate_initial_params(inputs.K))
        t1 = time.perf_counter()
        solver.solve(problem)
        t2 = time.perf_counter()
        prep, solve = prep + t1 - t0, solve + t2 - t1
        t3 = time.perf_counter()
        outcome = engine.fit(frame, settings)
        t4 = time.perf_counter()
        outcome.to_json()
        t5 = time.perf_counter()
        json_time, total = json_time + t5 - t4, total + t5 - t3
    t6 = time.perf_counter()
    for frame in frames:
        prophet_model.model_to_json(prophet_model.fit_prophet(frame, settings))
    stock = time.perf_counter() - t6
    n = len(frames)
    print(f"daily seed customers, 365 rows, {n} each (1 core):")
    print(
        f"  engine: prep {prep / n * 1e3:.2f} ms + solve {solve / n * 1e3:.2f} ms; "
        f"end to end (prep+solve+json) {total / n * 1e3:.2f} ms, of which json {json_time / n * 1e3:.2f} ms"
    )
    print(
        f"  stock Prophet.fit + model_to_json: {stock / n * 1e3:.2f} ms   "
        f"ratio end to end {stock / total:.1f}x, solve alone {stock / solve:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--timing-customers", type=int, default=100)
    parser.add_argument("--drivers", action="store_true", help="the holidays and regressors corpus")
    args = parser.parse_args()
    quiet_third_party()
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    if not args.drivers:
        timing_split(args.timing_customers)
    fidelity_report(args.series, drivers=args.drivers)


if __name__ == "__main__":
    main()
