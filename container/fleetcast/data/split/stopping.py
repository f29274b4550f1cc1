"""Stopping on SIGTERM (how SageMaker stops a job) at a safe point, so the run's cleanup always runs.

The handler only records the request; the run checks it between chunks, spools and customers and leaves
through `SystemExit(143)`, whose unwinding removes the spools and the staged output. Raising from the
handler itself would land wherever the signal happens to arrive: inside pandas' C tokenizer it turns
into a TypeError traceback and exit code 1.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested = threading.Event()


def check() -> None:
    """Leave the run now if a stop was requested."""
    if _requested.is_set():
        raise SystemExit(128 + signal.SIGTERM)


@contextmanager
def sigterm_stops_at_safe_points() -> Iterator[None]:
    """Within this block SIGTERM requests a stop that `check()` acts on (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: _requested.set())
    try:
        yield
        check()  # a stop that came after the last check still ends the run as stopped
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested.clear()
