"""Prophet's interval draws, made once per forecast shape and replayed for every customer and request.

A served forecast seeds numpy's legacy generator with the same seed for every request
(`compiled_predictor.INTERVAL_SEED`), so every customer with the same number of samples and future dates
consumes the very same stream: uniforms for the slope-change events, standard Laplace sizes, standard
normals for the noise. Only the scales differ per model, and numpy applies them as `0 + scale * draw`
(legacy `laplace` and `normal`), which is bit for bit `scale * draw`. `ReplayedStream` hands the
compiled predictor these cached draws, scaled as numpy would, instead of drawing them again: the same
numbers as the served forecast, without the cost of generating ~20,000 random values per customer.
Anything it was not built for (other shapes, other calls) raises, and the caller draws afresh.

Used by the servers' compiled predictor (every request) and the batch forecast job (every customer).
A stream keeps per-forecast state, so each thread has its own (`replayed_stream`); the cached draws
themselves are read-only and shared.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

# fleetcast.serving.predictor.INTERVAL_SEED (a test holds them equal; that module imports pandas).
INTERVAL_SEED = 0


class ReplayMismatch(Exception):  # noqa: N818 - says what happened
    """The predictor asked for draws the cache was not built for."""


@functools.lru_cache(maxsize=16)
def _cached_draws(samples: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(uniforms, standard Laplace, normals after those, normals of a fresh stream), read-only, each of
    shape (samples, steps) but laid out column-major: the compiled predictor transposes every draw to
    (steps, samples), which is then a view instead of a copy (element values are the same either way)."""
    stream = np.random.RandomState(INTERVAL_SEED)
    uniforms = stream.uniform(size=(samples, steps))
    laplace = stream.laplace(0, 1.0, size=(samples, steps))
    normals = stream.normal(0, 1.0, size=(samples, steps))
    fresh_normals = np.random.RandomState(INTERVAL_SEED).normal(0, 1.0, size=(samples, steps))
    draws = tuple(np.asfortranarray(array) for array in (uniforms, laplace, normals, fresh_normals))
    for array in draws:
        array.flags.writeable = False
    return draws


class ReplayedStream(np.random.RandomState):
    """A fresh `RandomState(INTERVAL_SEED)` as the compiled predictor uses it, for one forecast.

    The compiled predictor draws, in this order, `uniform(size=(samples, steps))` and
    `laplace(0, scale, same shape)` (only for a trend that can change), then `normal(0, sigma,
    (samples, steps))`. Call `fresh()` before each forecast, as the served path seeds per request;
    building one seeds a generator (~0.2 ms), so `replayed_stream` keeps one per shape and process.
    """

    def __init__(self, samples: int, steps: int) -> None:
        super().__init__(INTERVAL_SEED)
        self._shape = (samples, steps)
        self._uniforms, self._laplace, self._normals, self._fresh_normals = _cached_draws(samples, steps)
        self._calls: list[str] = []

    def fresh(self) -> ReplayedStream:
        """This stream as a newly seeded one: the next draws start from the beginning again."""
        self._calls = []
        return self

    def _expect(self, call: str, size: object, allowed_after: tuple[tuple[str, ...], ...]) -> None:
        if (tuple(size) if isinstance(size, tuple | list) else (size,)) != self._shape:
            raise ReplayMismatch(f"{call} of shape {size}, cached {self._shape}")
        if tuple(self._calls) not in allowed_after:
            raise ReplayMismatch(f"{call} after {self._calls}")
        self._calls.append(call)

    def uniform(self, low=0.0, high=1.0, size=None):
        if (low, high) != (0.0, 1.0):
            raise ReplayMismatch(f"uniform({low}, {high})")
        self._expect("uniform", size, ((),))
        return self._uniforms

    def laplace(self, loc=0.0, scale=1.0, size=None):
        if loc != 0:
            raise ReplayMismatch(f"laplace(loc={loc})")
        self._expect("laplace", size, (("uniform",),))
        return scale * self._laplace

    def normal(self, loc=0.0, scale=1.0, size=None):
        if loc != 0:
            raise ReplayMismatch(f"normal(loc={loc})")
        self._expect("normal", size, ((), ("uniform", "laplace")))
        return scale * (self._fresh_normals if len(self._calls) == 1 else self._normals)


class _ThreadStreams(threading.local):
    def __init__(self) -> None:
        self.streams: dict[tuple[int, int], ReplayedStream] = {}


_THREAD_STREAMS = _ThreadStreams()
STREAMS_PER_THREAD = 16


def replayed_stream(samples: int, steps: int) -> ReplayedStream:
    """This thread's stream for (samples, steps); call `.fresh()` on it before each forecast."""
    streams = _THREAD_STREAMS.streams
    stream = streams.get((samples, steps))
    if stream is None:
        if len(streams) >= STREAMS_PER_THREAD:
            streams.pop(next(iter(streams)))  # the oldest shape: periods vary little in practice
        stream = streams[(samples, steps)] = ReplayedStream(samples, steps)
    return stream
