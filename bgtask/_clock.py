"""One clock for the lifecycle: monotonic stamps, shown as wall-clock seconds.

Durations and waits come from ``time.perf_counter`` (never goes back); an event's
timestamps are converted to seconds since the epoch with one offset taken at import.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["now", "wall_time"]

now: Final = time.perf_counter
_OFFSET: Final = time.time() - time.perf_counter()


def wall_time(stamp: float) -> float | None:
    """``stamp`` (from :func:`now`) in seconds since the epoch; None for 0.0 (not yet).

    >>> abs(wall_time(now()) - time.time()) < 1.0
    True
    """
    return stamp + _OFFSET if stamp else None
