"""One BLAS thread per worker process.

The fleet loops (`training/fleet.py`, `forecast/job.py`) already run one worker process per core, and
OpenBLAS starts a thread pool of its own in each of them, sized to the machine. Once a fit's matrices
pass OpenBLAS's threading threshold (730-row multiplicative fits with holidays or a regressor do), the
workers' threads compete for the same cores: 150 `generate --drivers` customers trained in 55.7 s with the
default pools and in 5.3 s with one thread per worker (2 workers, 2 cores). The limit is set in each
worker after the fork, so it holds whatever the parent imported before (numpy has started its pool by
then, and an environment variable would come too late).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> None:
    """Limit this process's BLAS libraries to one thread, for as long as it lives."""
    threadpool_limits(limits=1, user_api="blas")
