"""An offloaded run, carried between the pool's threads and the loop, never waiting.

A :class:`Relay` drives one :class:`~bgtask._policy.Run` from two sides: its sync tasks on a
pool thread, its async tasks on the private loop. When the next task is of the other kind,
the run is handed across and the side it leaves is free at once: no thread waits while the
loop runs an async task, and the loop never waits for a sync one. Order and the error policy
are the run's own, so they hold across hand-offs; a run of async tasks only never touches a
pool thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from . import _loop
from ._run import async_chain, continue_here, run_sync

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._collection import Item
    from ._policy import Run
    from ._pool import ThreadPool
    from ._task import BackgroundTask

__all__ = ["Relay"]

logger: Final = logging.getLogger("bgtask")

#: The name of a relay's asyncio task (the run names each background task it cuts).
_ON_LOOP: Final = "bgtask offloaded run"


class Relay:
    """A run on its way between the pool and the loop; ``finished(self)`` at its end."""

    __slots__ = ("_finished", "_next", "_pool", "run")

    def __init__(self, run: Run, pool: ThreadPool, finished: Callable[[Relay], object]) -> None:
        self.run = run
        self._pool = pool
        self._finished = finished
        #: The task the run gave last, for the side the run was handed to (None: ask it).
        self._next: Item | None = None

    def begin(self, first_is_async: bool) -> bool:
        """Start on the loop (``first_is_async``: the collection starts with an async task,
        a hint only) or on a pool thread. False, nothing run, when that side will not take
        it (the pool's queue is full, the interpreter is finalizing): the caller runs it."""
        if first_is_async:
            return self._to_loop()
        return self._pool.submit(self)

    def resume_after(self, task: BackgroundTask, delay: float) -> bool:
        """Carry the run on from ``task`` in ``delay`` seconds (a retry's wait), holding no
        thread meanwhile. False when no timer can be set (the interpreter is finalizing)."""
        self._next = task
        return _loop.later(delay, self._resume)

    def _resume(self) -> None:
        # On the loop, at the end of the wait: to where the task runs.
        task, self._next = self._next, None
        if task is not None:
            self._hand_over(task)

    def cut(self, reason: str, /) -> None:
        """A deadline passed: the run names what it had left and starts nothing more."""
        self.run.cut(reason)

    def __call__(self) -> None:
        """On a pool thread: the sync tasks, up to the next async one or the end."""
        run = self.run
        task, self._next = self._next, None
        try:
            if task is None:
                task = run.next()
            while task is not None and not task.is_async:
                if run_sync(run, task):
                    task = None  # a retry that waits took the rest of the run elsewhere
                    break
                task = run.next()
        except BaseException:  # a stop request has no caller to stop on a pool thread
            logger.exception("a task told the process to stop on an offload thread")
            task = None
        self._hand_over(task)

    def _hand_over(self, task: Item | None) -> None:
        """Carry the run to where ``task`` runs, or end it."""
        if task is None:
            self._finished(self)
            return
        self._next = task
        if task.is_async:
            if not self._to_loop():
                self._next = None
                self._here(task)  # no loop any more (finalizing): on this thread
        elif not self._pool.submit(self, force=True):
            self()  # no pool thread can start any more (finalizing): here, on the loop

    def _to_loop(self) -> bool:
        return _loop.start(self._on_loop(), _ON_LOOP, self._after_loop, names_its_tasks=True)

    async def _on_loop(self) -> Item | None:
        task, self._next = self._next, None
        return await async_chain(self.run, self.run.next() if task is None else task)

    def _after_loop(self, returned: bool, value: Any) -> None:
        """On the loop: the async tasks are done; ``value`` is the next (sync) task."""
        if not returned:
            # Cancelled by a deadline before its first step (the run names its tasks), or
            # the run's own code failed: tasks never raise out of async_chain.
            if not (isinstance(value, asyncio.CancelledError) and _loop.cutting()):
                logger.error("an offloaded run ended early", exc_info=value)
            value = None
        self._hand_over(value)

    def _here(self, task: Item) -> None:
        try:
            continue_here(self.run, task)
        except BaseException:
            logger.exception("a task told the process to stop on an offload thread")
        self._finished(self)
