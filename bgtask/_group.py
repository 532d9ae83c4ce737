"""A group's tasks, run at the same time: async ones together on the loop, sync ones on
threads of their own, at most ``limit`` of each kind at once.

The thread that reaches the group in its run (a request's, in ``close()``, or a pool
thread) waits until every task of the group has ended, so the group keeps its place in
the run's order. Each task goes through the run's policy as it would alone (its start,
its end, its retries, which wait inside the group); a failure marks the run's collection
failed once the group ends, and under ``continue_on_error=False`` the tasks the group has
not started yet are skipped.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from . import _lifecycle, _loop
from ._native import allocate_lock, start_thread
from ._task import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._groups import Group
    from ._policy import Run

__all__ = ["run_group"]


class _Progress:
    """Which of the group's tasks may still start, and whether one of them failed."""

    def __init__(self, run: Run, group: Group) -> None:
        self.run = run
        self.group = group
        self.failed = False
        self._lock: Any = allocate_lock()

    def may_start(self, task: BackgroundTask) -> bool:
        """False, the task skipped, once a failure stops the group."""
        with self._lock:
            stopped = self.failed and not self.group.continue_on_error
        if stopped:
            _lifecycle.skipped(task, self.run.collection, self.run.mode)
        return not stopped

    def ended(self, task: BackgroundTask) -> None:
        if task.state in ("failed", "timed_out"):
            with self._lock:
                self.failed = True


def run_group(
    run: Run,
    group: Group,
    run_sync: Callable[[Run, BackgroundTask], None],
    run_async: Callable[[Run, BackgroundTask], Any],
) -> None:
    """Run ``group``'s tasks at the same time and return when all have ended.

    ``run_sync(run, task)`` runs one sync task in the calling thread, ``run_async`` is a
    coroutine function running one async task; both wait for their retries in place.
    """
    tasks = [task for task in group.tasks if isinstance(task, BackgroundTask)]
    progress = _Progress(run, group)
    limit = group.limit or max(1, len(tasks))
    sync = [task for task in tasks if not task.is_async]
    asynchronous = [task for task in tasks if task.is_async]
    # threading.Lock is looked up now: under gevent a waiting greenlet yields to the others.
    finished = threading.Lock()
    finished.acquire()
    left = [min(limit, len(sync))]
    queue = list(reversed(sync))
    queue_lock: Any = allocate_lock()

    def worker() -> None:
        try:
            while True:
                with queue_lock:
                    if not queue:
                        break
                    task = queue.pop()
                if progress.may_start(task):
                    run_sync(run, task)
                    progress.ended(task)
        finally:
            with queue_lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                finished.release()

    for _ in range(left[0]):
        start_thread(worker)
    if asynchronous:
        together = _together(run, asynchronous, limit, progress, run_async)
        _loop.run(together, "bgtask group", names_its_tasks=True)
    if sync:
        finished.acquire()


async def _together(
    run: Run,
    tasks: list[BackgroundTask],
    limit: int,
    progress: _Progress,
    run_async: Callable[[Run, BackgroundTask], Any],
) -> None:
    slots = asyncio.Semaphore(limit)

    async def one(task: BackgroundTask) -> None:
        async with slots:
            if progress.may_start(task):
                await run_async(run, task)
                progress.ended(task)

    await asyncio.gather(*(one(task) for task in tasks))
