"""The seasonal-change model kind: the change series, the forecast k weeks ahead, the document.

The forecast k whole weeks ahead is "the value k weeks back plus k times the change" only because the
Prophet part repeats its change forecast every week: checked on a real Prophet fit of the part's settings.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fleetcast.model import archive, composed, seasonal_change
from fleetcast.model.prophet_model import fit_prophet, predict_values
from fleetcast.model.seasonal_change import SeasonalChange, SeasonalChangeError
from fleetcast.model.settings import ProphetSettings
from tests.model.test_baseline import WEEK, history, reference


@pytest.mark.parametrize("gaps", [False, True])
def test_the_change_series_is_each_value_minus_the_one_a_week_earlier(gaps: bool):
    ds, y = history(periods=40, gaps=gaps)
    change_ds, change = seasonal_change.changes(ds, y)
    later = ds - WEEK >= ds[0]
    assert np.array_equal(change_ds, ds[later]) and len(change) == np.count_nonzero(later)
    for date, value in zip(change_ds, change, strict=True):
        earlier = np.nonzero(ds <= date - WEEK)[0][-1]  # the last value at or before a week back
        assert value == pytest.approx(y[ds == date][0] - y[earlier], rel=1e-12)


def test_k_weeks_ahead_it_is_the_value_k_weeks_back_plus_k_changes_bounds_widened_by_sqrt_k():
    ds, y = history(periods=50)
    model = seasonal_change.fit(ds, y, name="weekly-change", freq="D", interval_width=0.8, intervals=True)
    dates = ds[-1] + np.arange(1, 20) * np.timedelta64(1, "D")  # up to three weeks ahead
    change = np.linspace(-2, 3, len(dates))
    lower, upper = change - 4, change + 5
    k = np.ceil((dates - ds[-1]) / WEEK)
    expected = np.array(reference(ds, y, dates)) + k * change
    combined = model.combine(dates, change, lower, upper)
    np.testing.assert_allclose(combined.yhat, expected, rtol=1e-12)
    np.testing.assert_allclose(combined.yhat_lower, expected - 4 * np.sqrt(k), rtol=1e-12)
    np.testing.assert_allclose(combined.yhat_upper, expected + 5 * np.sqrt(k), rtol=1e-12)
    assert model.combine(dates, change).yhat_lower is None
    # What holdout scoring and cross-validation compute from the whole history is what the model says.
    np.testing.assert_allclose(seasonal_change.forecast_values(change, ds, y, dates), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "settings",
    [
        ProphetSettings(),
        ProphetSettings(yearly_seasonality=True, country_holidays="DE", changepoint_prior_scale=0.5),
        replace(ProphetSettings(daily_seasonality=6), daily_by_day_type=True),
    ],
    ids=["defaults", "yearly-holidays-trend", "day-types"],
)
def test_the_prophet_part_forecasts_the_same_change_every_week(settings: ProphetSettings):
    """Whatever the configuration, the part's settings keep only what repeats weekly, so Prophet's own
    predict gives the same change at d, d + 1 week and d + 2 weeks."""
    part = seasonal_change.part_settings(settings)
    assert part.growth == "flat" and part.yearly_seasonality is False
    assert part.country_holidays is None and part.regressors == ()
    ds, y = history(freq="6h", periods=4 * 7 * 8)
    change_ds, change = seasonal_change.changes(ds, y + np.linspace(0, 30, len(y)))
    model = fit_prophet(pd.DataFrame({"ds": change_ds, "y": change}), part)
    first = pd.date_range(pd.Timestamp(ds[-1]) + pd.Timedelta(hours=6), periods=28, freq="6h")
    weeks = [predict_values(model, pd.Series(first + k * pd.Timedelta(days=7))) for k in range(3)]
    np.testing.assert_allclose(weeks[1], weeks[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(weeks[2], weeks[0], rtol=1e-9, atol=1e-9)


def test_the_document_round_trips_and_a_bad_one_says_what_is_wrong():
    ds, y = history(periods=30)
    model = seasonal_change.fit(ds, y, name="weekly-change", freq="D", interval_width=0.8, intervals=False)
    document = json.loads(json.dumps(model.to_dict()))
    again = SeasonalChange.from_dict(document)
    assert again.name == "weekly-change" and again.seasonal.to_dict() == model.seasonal.to_dict()
    metadata = {archive.KIND_KEY: archive.CHANGE_KIND, seasonal_change.CHANGE_KEY: document}
    assert composed.from_metadata(metadata).seasonal.to_dict() == model.seasonal.to_dict()
    for mutate, problem in [
        (lambda d: d.update(format="fleetcast-blend"), "not a fleetcast-seasonal-change document"),
        (lambda d: d.update(format_version=7), "format_version 7"),
        (lambda d: d.pop("seasonal"), "missing field 'seasonal'"),
        (lambda d: d["seasonal"].update(values="x"), "its seasonal part: a field has the wrong type"),
    ]:
        bad = json.loads(json.dumps(document))
        mutate(bad)
        with pytest.raises(SeasonalChangeError, match=problem):
            SeasonalChange.from_dict(bad)
    with pytest.raises(ValueError, match="lacks 'seasonal_change'"):
        composed.from_metadata({archive.KIND_KEY: archive.CHANGE_KIND})
