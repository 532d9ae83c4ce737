"""Offload mode: ``close()`` hands the request's collection to a pool of task threads.

The server's worker or thread is free for the next request while the tasks run. Within a
collection nothing changes (one pool thread runs it, in order, under its error policy);
different requests' collections run concurrently, up to the pool's size. When the queue
holds what the exit drain can run (see ``_pool``), the next collection runs inline in
``close()`` instead: back-pressure, never a drop, with a WARNING at most once per
``warn_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Final

from . import _lifecycle
from ._collection import tasks_of
from ._exit import exit_deadline
from ._pool import ThreadPool
from ._run import Run, run_here
from ._wording import counted

if TYPE_CHECKING:
    from ._request import RequestTasks

__all__ = ["OffloadPool", "default_pool"]

logger: Final = logging.getLogger("bgtask")


def _default_threads() -> int:
    return min(32, (os.cpu_count() or 1) * 4)


class OffloadPool:
    """A bounded pool of threads that runs requests' task collections after ``close()``.

    ``threads`` (default: 4 per CPU, at most 32) is how many collections run at once;
    ``max_pending`` (default 1000) the most that may wait, fewer when the exit timeout
    could not drain them. Size ``threads`` for the load: requests per second times seconds
    of work per request (async work waits on the loop but still holds its pool thread).

    >>> pool = OffloadPool(threads=8, max_pending=500)
    >>> pool.threads, pool.max_pending
    (8, 500)
    """

    def __init__(
        self, *, threads: int | None = None, max_pending: int = 1000, warn_interval: float = 60.0
    ) -> None:
        threads = _default_threads() if threads is None else threads
        if threads < 1:
            msg = f"an offload pool needs at least one thread, got {threads}"
            raise ValueError(msg)
        if max_pending < 0:
            msg = f"max_pending must be zero or more, got {max_pending}"
            raise ValueError(msg)
        self.threads = threads
        self.max_pending = max_pending
        self.warn_interval = warn_interval
        self._last_warning = -float("inf")
        self._pool = ThreadPool(threads, max_pending)

    def __repr__(self) -> str:
        return f"<OffloadPool threads={self.threads} max_pending={self.max_pending}>"

    def submit(self, tasks: RequestTasks, /) -> None:
        """Run ``tasks`` on a pool thread, or inline if the queue is full. Never raises."""
        if tasks.seal_if_empty():
            return
        for task in tasks_of(tasks.tasks):
            _lifecycle.handed_off(task, tasks, "offload", "the offload pool", final=False)
        if not self._pool.submit(_Offloaded(tasks)):
            self._warn_full()
            tasks.run_for_request()

    def wait_idle(self, timeout: float | None = None, /) -> bool:
        """Wait until no collection is queued or running; True when that happened in time."""
        return self._pool.wait_idle(timeout)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_warning < self.warn_interval:
            return
        self._last_warning = now
        state = self._pool.state()
        logger.warning(
            "offload queue full (%s waiting, %s busy, %.3f s per collection; it may hold what "
            "drains in half the %g s exit timeout, at most %d): running tasks inline in "
            "close() until it drains; consider more threads",
            counted(len(state.queue), "collection"),
            counted(self.threads, "thread"),
            self._pool.seconds_per_item(state),
            exit_deadline(),
            self.max_pending,
        )


class _Offloaded:
    """A request's collection as the pool's work: one run, on a pool thread."""

    __slots__ = ("_run",)

    def __init__(self, tasks: RequestTasks) -> None:
        self._run = Run(tasks, "offload", tasks.scope)

    def run(self) -> None:
        try:
            run_here(self._run)
        except BaseException:  # a stop request has no caller to stop on a pool thread
            logger.exception("a task told the process to stop on an offload thread")

    def cut(self, reason: str, /) -> None:
        self._run.cut(reason)


_default: OffloadPool | None = None


def default_pool() -> OffloadPool:
    """The process's shared pool, created on first use with the default sizes."""
    global _default
    if _default is None:
        _default = OffloadPool()
    return _default
