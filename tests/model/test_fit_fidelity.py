"""Fidelity of the in-process fit against Stan over a mixed corpus (the bench runs 1,000+ series)."""

from __future__ import annotations

import logging

import pytest

from fleetcast.model.fit import engine
from tests.support import fit_fidelity as fidelity

CORPUS_SIZE = 110

pytestmark = pytest.mark.slow  # fitting the corpus with Stan takes ~6 s


@pytest.fixture(scope="module")
def summary() -> fidelity.Summary:
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    return fidelity.Summary([fidelity.compare(case) for case in fidelity.corpus(CORPUS_SIZE)])


def test_every_family_is_fitted_in_process(summary: fidelity.Summary):
    fallbacks = [(c.name, c.fallback_reason) for c in summary.comparisons if c.engine_used != engine.EXACT]
    assert fallbacks == []
    families = {c.name.rsplit("-", 1)[0] for c in summary.exact}
    assert families == set(fidelity.FAMILIES)
    assert len(summary.comparisons) >= 100


def test_fidelity_targets_hold(summary: fidelity.Summary):
    assert summary.failures() == []
    assert summary.median_diff() <= 0.002


@pytest.fixture(scope="module")
def driver_summary() -> fidelity.Summary:
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    return fidelity.Summary([fidelity.compare(case) for case in fidelity.driver_corpus(35)])


def test_holiday_and_regressor_models_never_fall_back_to_stan(driver_summary: fidelity.Summary):
    fallbacks = [
        (c.name, c.fallback_reason) for c in driver_summary.comparisons if c.engine_used != engine.EXACT
    ]
    assert fallbacks == []
    assert {c.name.rsplit("-", 1)[0] for c in driver_summary.exact} == set(fidelity.DRIVER_FAMILIES)
    assert driver_summary.failures() == []
    assert driver_summary.median_diff() <= 0.002
