"""The compiled predictor's replayed interval draws: bit for bit a freshly seeded stream, per thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fleetcast.serving import compiled_predictor
from fleetcast.serving.compiled_predictor import CompiledPredictor
from fleetcast.serving.draws import INTERVAL_SEED
from fleetcast.serving.protocol import ForecastRequest


def drawn_afresh(predictor: CompiledPredictor, request: ForecastRequest) -> dict:
    """The same forecast with the stream drawn again from a newly seeded generator."""
    dates = predictor.future_dates(request.period, predictor.freq)
    predicted = predictor.compiled.predict(dates, intervals=True, seed=np.random.RandomState(INTERVAL_SEED))
    return {"lower": predicted.yhat_lower.tolist(), "upper": predicted.yhat_upper.tolist()}


@pytest.mark.parametrize("kind", ["daily", "hourly"])
@pytest.mark.parametrize("period", [1, 7, 30])
def test_replayed_draws_are_the_seeded_streams_draws(models, kind, period):
    predictor = CompiledPredictor.load(models[kind].model_dir)
    assert predictor.has_intervals
    request = ForecastRequest(period=period, intervals=True)
    rows = predictor.forecast(request)["forecast"]
    expected = drawn_afresh(predictor, request)
    assert [row["yhat_lower"] for row in rows] == expected["lower"]
    assert [row["yhat_upper"] for row in rows] == expected["upper"]
    assert predictor.forecast(request)["forecast"] == rows  # replayed again: the same answer


def test_forecasts_past_the_cache_bound_draw_afresh_and_agree(models, monkeypatch):
    predictor = CompiledPredictor.load(models["daily"].model_dir)
    request = ForecastRequest(period=14, intervals=True)
    replayed = predictor.forecast(request)
    monkeypatch.setattr(compiled_predictor, "REPLAY_MAX_DRAWS", 0)
    assert predictor.forecast(request) == replayed


def test_threads_replaying_at_once_each_get_the_whole_answer(models):
    predictor = CompiledPredictor.load(models["daily"].model_dir)
    request = ForecastRequest(period=7, intervals=True)
    expected = predictor.forecast(request)
    answers: list[dict] = []
    barrier = threading.Barrier(8)

    def serve() -> None:
        barrier.wait()
        answers.extend(predictor.forecast(request) for _ in range(50))

    threads = [threading.Thread(target=serve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 400 and all(answer == expected for answer in answers)
