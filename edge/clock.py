"""Clock and small shared helpers (module-level so tests can move time)."""
from __future__ import annotations

import time


def now() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


def monotonic() -> float:
    """Monotonic seconds, for ages and timeouts."""
    return time.monotonic()


def now_ms() -> int:
    """Wall-clock milliseconds, the unit YARN uses."""
    return int(now() * 1000)
