"""The blend model kind: several weeks kept, lagged values weighted, its document, and the blend itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fleetcast.model import archive, baseline, blend, composed
from fleetcast.model.blend import Blend, BlendError
from tests.model.test_baseline import WEEK, history

THIRDS = next(w for w in blend.WEIGHTS if w.name == "thirds-4-weeks")


def lagged_reference(ds: np.ndarray, y: np.ndarray, dates: np.ndarray, season_weights) -> list[float]:
    """By the definition, one date at a time: sum_j a_j x (the last value at or before date - (k + j)
    weeks), k the fewest whole weeks (at least one) reaching back to the last observation."""
    out = []
    for date in dates:
        k = 1
        while date - k * WEEK > ds[-1]:
            k += 1
        total = 0.0
        for j, weight in enumerate(season_weights):
            earlier = np.nonzero(ds <= date - (k + j) * WEEK)[0]
            total += weight * (float(y[earlier[-1]]) if len(earlier) else float(y[0]))
        out.append(total)
    return out


@pytest.mark.parametrize("gaps", [False, True])
def test_a_model_keeping_several_weeks_predicts_their_weighted_values(gaps: bool):
    ds, y = history(periods=90, gaps=gaps)
    weights = THIRDS.season_weights
    model = baseline.fit(ds, y, freq="D", interval_width=0.8, intervals=True, seasons=len(weights))
    # It keeps the last four weeks and the observation at or before their start, nothing older.
    assert model.stamps_ns[0] <= (ds[-1] - 4 * WEEK).astype("datetime64[ns]").astype(np.int64)
    assert model.stamps_ns[1] > (ds[-1] - 4 * WEEK).astype("datetime64[ns]").astype(np.int64)
    dates = ds[-1] + np.arange(1, 30) * np.timedelta64(1, "D")  # four weeks ahead and more
    expected = lagged_reference(ds, y, dates, weights)
    assert model.predict(dates, intervals=False, season_weights=weights).yhat.tolist() == pytest.approx(
        expected, rel=1e-12
    )
    whole = baseline.forecast_values(ds, y, dates, season_weights=weights)  # from the whole history
    assert whole.tolist() == pytest.approx(expected, rel=1e-12)
    # One weight is plain seasonal-naive, bit for bit.
    plain = baseline.fit(ds, y, freq="D", interval_width=0.8, intervals=True)
    assert np.array_equal(plain.predict(dates, intervals=False).yhat, baseline.forecast_values(ds, y, dates))


def test_the_blend_weighs_prophet_and_the_lagged_values_bounds_included():
    ds, y = history(periods=60)
    model = blend.fit(ds, y, THIRDS, freq="D", interval_width=0.8, intervals=True)
    dates = ds[-1] + np.arange(1, 11) * np.timedelta64(1, "D")
    prophet = np.linspace(90, 110, 10)
    lower, upper = prophet - 5, prophet + 7
    blended = model.combine(dates, prophet, lower, upper)
    seasonal = np.array(lagged_reference(ds, y, dates, THIRDS.season_weights))
    w = THIRDS.prophet_weight
    np.testing.assert_allclose(blended.yhat, w * prophet + (1 - w) * seasonal, rtol=1e-12)
    part = model.seasonal.predict(dates, intervals=True, season_weights=THIRDS.season_weights)
    np.testing.assert_allclose(blended.yhat_lower, w * lower + (1 - w) * part.yhat_lower, rtol=1e-12)
    np.testing.assert_allclose(blended.yhat_upper, w * upper + (1 - w) * part.yhat_upper, rtol=1e-12)
    assert np.all(blended.yhat_lower < blended.yhat) and np.all(blended.yhat < blended.yhat_upper)
    assert model.combine(dates, prophet).yhat_lower is None  # no bounds given: none blended
    # What holdout scoring and cross-validation compute from a whole history is what the fitted blend says.
    np.testing.assert_allclose(blend.forecast_values(prophet, ds, y, dates, THIRDS), blended.yhat, rtol=1e-12)


def test_the_blend_document_round_trips_and_a_bad_one_says_what_is_wrong():
    ds, y = history(periods=60)
    model = blend.fit(ds, y, THIRDS, freq="D", interval_width=0.8, intervals=True)
    document = json.loads(json.dumps(model.to_dict()))
    again = Blend.from_dict(document)
    assert again.name == THIRDS.name and again.season_weights == THIRDS.season_weights
    assert again.seasonal.to_dict() == model.seasonal.to_dict()
    metadata = {archive.KIND_KEY: archive.BLEND_KIND, blend.BLEND_KEY: document}
    assert composed.from_metadata(metadata).prophet_weight == THIRDS.prophet_weight
    for mutate, problem in [
        (lambda d: d.update(format="other"), "not a fleetcast-blend document"),
        (lambda d: d.update(format_version=2), "format_version 2"),
        (lambda d: d.pop("prophet_weight"), "missing field 'prophet_weight'"),
        (lambda d: d.update(prophet_weight=1.5), "not in \\[0, 1\\]"),
        (lambda d: d.update(season_weights=[0.5, 0.6]), "summing to 1"),
        (lambda d: d.update(season_weights=[]), "summing to 1"),
        (lambda d: d.update(season_weights="ab"), "wrong type"),
        (lambda d: d["seasonal"].pop("values"), "its seasonal part: missing field 'values'"),
    ]:
        bad = json.loads(json.dumps(document))
        mutate(bad)
        with pytest.raises(BlendError, match=problem):
            Blend.from_dict(bad)
    with pytest.raises(ValueError, match="lacks 'blend'"):
        composed.from_metadata({archive.KIND_KEY: archive.BLEND_KIND})


def test_the_weightings_are_proper_blends():
    for weights in blend.WEIGHTS:
        assert 0 < weights.prophet_weight < 1 and sum(weights.season_weights) == pytest.approx(1.0)
    assert len({w.name for w in blend.WEIGHTS}) == len(blend.WEIGHTS)
