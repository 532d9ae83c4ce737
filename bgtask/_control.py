"""What a task's options do to its run: its deadline, and where a retry waits.

An async task is awaited under ``asyncio.timeout``: at its deadline it is cancelled (it
sees ``CancelledError`` and may clean up) and counts as :class:`TimedOut`. A sync task
cannot be interrupted in its thread: a timer on the loop reports it overdue, once, and it
runs on. A retry that must wait leaves the thread that drives the run when the run allows
it (``Run.moves_retries``: a request's ``close()``, an offloaded run): the mover installed
by ``_offload`` carries the rest of the run on after the wait, holding no thread.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from . import _lifecycle, _loop
from ._policy import TimedOut

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._policy import Run
    from ._task import BackgroundTask

__all__ = ["install_retry_mover", "retry_elsewhere", "watch_overdue", "with_deadline"]


async def with_deadline(task: BackgroundTask, seconds: float) -> TimedOut | None:
    """Await ``task``, cancelled ``seconds`` after it started: None, or :class:`TimedOut`."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            await task.func(*task.args, **task.kwargs)  # type: ignore[misc]
    except TimeoutError:
        if not deadline.expired():
            raise  # the task's own TimeoutError: a failure like any other
        return TimedOut(f"its deadline of {seconds:g} s passed; it was cancelled")
    return None


#: Moves a run whose retry waits off the driving thread; installed by ``_offload``.
_mover: Callable[[Run, BackgroundTask, float], bool] | None = None


def install_retry_mover(mover: Callable[[Run, BackgroundTask, float], bool]) -> None:
    """How a waiting retry leaves the thread that drives the run (``bgtask._offload``)."""
    global _mover
    _mover = mover


def retry_elsewhere(run: Run, task: BackgroundTask, delay: float) -> bool:
    """Hand the rest of ``run``, from ``task`` on, to run after ``delay`` elsewhere."""
    return run.moves_retries and _mover is not None and _mover(run, task, delay)


def watch_overdue(run: Run, task: BackgroundTask, timeout: float) -> None:
    """At ``timeout`` after its start, a sync task still on the same attempt is overdue."""
    attempt = task.attempts

    def check() -> None:
        if task.state == "running" and task.attempts == attempt:
            reason = (
                f"still running after {timeout:g} s, its deadline; a sync task cannot be "
                "interrupted: it runs on"
            )
            _lifecycle.overdue(task, run.collection, run.mode, reason)

    _loop.later(timeout, check)
