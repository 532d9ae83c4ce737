"""How an engine retries a job whose task failed: how many times, how long it waits."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["RetryPolicy"]


class RetryPolicy:
    """How many times an engine retries a job whose task failed, and how long it waits.

    ``max`` retries at most, per job (one request's collection). Before retry ``n`` the
    engine waits ``backoff`` seconds, or ``backoff[n - 1]`` for a sequence (its last value
    repeats). A retry runs only the tasks that have not succeeded yet, in order: the one
    that failed, then those it stopped (or, under ``continue_on_error``, the failed ones).

    >>> policy = RetryPolicy(max=4, backoff=[1, 10, 60])
    >>> policy.delays()
    [1.0, 10.0, 60.0, 60.0]
    """

    __slots__ = ("backoff", "max")

    def __init__(self, max: int, *, backoff: float | Sequence[float] = 0.0) -> None:
        if isinstance(max, bool) or not isinstance(max, int) or max < 1:
            msg = f"max must be a whole number of retries, 1 or more, got {max!r}"
            raise ValueError(msg)
        steps = [float(backoff)] if isinstance(backoff, int | float) else list(map(float, backoff))
        if not steps or any(not math.isfinite(step) or step < 0 for step in steps):
            msg = f"backoff must be seconds, zero or more (a number or a sequence), got {backoff!r}"
            raise ValueError(msg)
        self.max = max
        self.backoff: tuple[float, ...] = tuple(steps)

    def delays(self) -> list[float]:
        """The wait before each retry, one per retry."""
        last = len(self.backoff) - 1
        return [self.backoff[min(i, last)] for i in range(self.max)]

    def __repr__(self) -> str:
        backoff = self.backoff[0] if len(self.backoff) == 1 else list(self.backoff)
        return f"RetryPolicy(max={self.max}, backoff={backoff!r})"
