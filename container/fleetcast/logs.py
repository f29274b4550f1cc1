"""Logging set-up shared by every entry point: our lines readable, third-party noise silenced."""

from __future__ import annotations

import logging
import os
import sys
import warnings

# cmdstanpy logs two INFO lines per fit, prophet logs "Importing plotly failed" on import.
NOISY_LOGGERS = (
    "cmdstanpy",
    "prophet",
    "prophet.plot",
    "prophet.models",
    "matplotlib",
    "botocore",
    "urllib3",
)


def quiet_third_party() -> None:
    # prophet 1.5 uses pandas APIs that pandas 3 deprecates; that is prophet's to fix, not our users'.
    warnings.filterwarnings("ignore", category=FutureWarning, module="prophet")
    warnings.filterwarnings("ignore", message=".*(inplace keyword|convert_dates).*")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # cmdstanpy adds its own handler at import; keep its warnings out unless something is really wrong.
    logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("FLEETCAST_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if not any(getattr(h, "_fleetcast", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._fleetcast = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    quiet_third_party()
