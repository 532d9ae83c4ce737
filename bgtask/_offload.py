"""Offload mode: a per-process pool of task threads that runs requests' collections.

With offload, ``close()`` hands the request's collection to this pool and returns at once:
the server's worker or thread is free for the next request while the tasks run. Within a
collection nothing changes (one pool thread runs it, in order, under its error policy);
different requests' collections run concurrently, up to the pool's size.

The pool is bounded: when ``max_pending`` collections are already waiting, the next one runs
inline in ``close()`` instead (back-pressure, never a drop), with a WARNING at most once per
``warn_interval`` seconds.

Threads are native (gevent's originals when it has monkey-patched ``threading``) and wait on
native locks, so a greenlet handing work over never blocks its hub. The pool starts on first
use and is started afresh in a forked child.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ._collection import names_of
from ._exit import register_drainer
from ._native import native
from ._pending import Pending

if TYPE_CHECKING:
    from ._collection import BackgroundTasks

__all__ = ["OffloadPool", "default_pool"]

logger: Final = logging.getLogger("bgtask")


def _default_threads() -> int:
    return min(32, (os.cpu_count() or 1) * 4)


class _Worker:
    """One pool thread: its wake-up lock and the collection it was handed."""

    __slots__ = ("wake", "work")

    def __init__(self) -> None:
        self.wake: Any = native("_thread", "allocate_lock")()
        self.wake.acquire()
        self.work: BackgroundTasks | None = None


class _State:
    """The pool's threads and queue in one process (replaced after ``fork()``)."""

    __slots__ = ("busy", "idle", "lock", "pending", "pid", "thread_ids", "threads", "work")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock: Any = native("_thread", "allocate_lock")()
        self.pending: deque[BackgroundTasks] = deque()
        self.idle: list[_Worker] = []
        #: Collections being run right now, for drain() and for naming what exit cuts.
        self.busy: list[BackgroundTasks] = []
        self.threads = 0
        #: The pool threads' native ids: drain() from one of them would wait on itself.
        self.thread_ids: set[int] = set()
        #: Collections queued or running, for drain().
        self.work = Pending()


class OffloadPool:
    """A bounded pool of threads that runs requests' task collections after ``close()``.

    ``threads`` (default: 4 per CPU, at most 32) is how many collections run at once;
    ``max_pending`` (default 1000) how many may wait before ``close()`` runs them inline.
    Size ``threads`` for the load: requests per second times seconds of sync work per
    request (async work waits on the loop but still holds its pool thread).

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
        self._state: _State | None = None
        self._state_lock: Any = native("_thread", "allocate_lock")()
        register_drainer(0, self)

    def submit(self, tasks: BackgroundTasks) -> None:
        """Run ``tasks`` on a pool thread, or inline if the queue is full. Never raises."""
        if tasks.seal_if_empty():
            return
        state = self._current()
        with state.lock:
            state.work.add()
            if state.idle:
                worker = state.idle.pop()
                worker.work = tasks
                state.busy.append(tasks)
                worker.wake.release()
                return
            if state.threads < self.threads:
                state.threads += 1
                state.busy.append(tasks)
                start = True
            elif len(state.pending) < self.max_pending:
                state.pending.append(tasks)
                return
            else:
                start = False
                state.work.done()
        if start:
            worker = _Worker()
            worker.work = tasks
            try:
                native("_thread", "start_new_thread")(self._serve, (state, worker))
            except RuntimeError:
                # No new threads once the interpreter is finalizing (3.12+): run it here.
                with state.lock:
                    state.threads -= 1
                    state.busy.remove(tasks)
                try:
                    tasks.run_for_request()
                finally:
                    state.work.done()
            return
        self._warn_full(len(state.pending))
        tasks.run_for_request()

    def wait_idle(self, timeout: float | None, /) -> bool:
        """Wait until no collection is queued or running; True when that happened in time."""
        state = self._state
        if state is None or state.pid != os.getpid():
            return True
        if native("_thread", "get_ident")() in state.thread_ids:
            msg = (
                "cannot wait for the offload pool from one of its own tasks: it would wait "
                "for itself; return from the task instead"
            )
            raise RuntimeError(msg)
        return state.work.wait(timeout)

    def cut(self) -> None:
        """At the exit deadline: drop what never started and name what is still running."""
        state = self._state
        if state is None or state.pid != os.getpid():
            return
        with state.lock:
            dropped = list(state.pending)
            state.pending.clear()
            running = list(state.busy)
        state.work.done(len(dropped))
        if dropped:
            names = [name for tasks in dropped for name in names_of(tasks.discard())]
            logger.error(
                "bgtask: exit deadline passed, %d offloaded task(s) never started: %s",
                len(names),
                ", ".join(names),
            )
        if running:
            names = [name for tasks in running for name in names_of(tasks.tasks)]
            logger.error(
                "bgtask: exit deadline passed with offloaded tasks still running: %s",
                ", ".join(names),
            )

    def _current(self) -> _State:
        state = self._state
        if state is not None and state.pid == os.getpid():
            return state
        with self._state_lock:
            if self._state is None or self._state.pid != os.getpid():
                # First use, or a forked child: the parent's threads do not exist here.
                self._state = _State()
            return self._state

    def _serve(self, state: _State, worker: _Worker) -> None:
        state.thread_ids.add(native("_thread", "get_ident")())
        tasks = worker.work
        while tasks is not None:
            try:
                tasks.run_for_request()
            except BaseException:  # SystemExit in a task: there is no caller to stop
                logger.exception(
                    "bgtask: a task raised a BaseException, which stopped its offloaded "
                    "collection; the tasks after it did not run (the collection: %s)",
                    ", ".join(names_of(tasks.discard())),
                )
            with state.lock:
                state.busy.remove(tasks)
                if state.pending:
                    tasks = state.pending.popleft()
                    state.busy.append(tasks)
                else:
                    tasks = worker.work = None
                    state.idle.append(worker)
            state.work.done()
            if tasks is None:
                worker.wake.acquire()  # until submit() hands this thread a collection
                tasks = worker.work

    def _warn_full(self, pending: int) -> None:
        now = time.monotonic()
        if now - self._last_warning >= self.warn_interval:
            self._last_warning = now
            logger.warning(
                "bgtask: offload queue full (%d collections waiting, %d threads busy): "
                "running tasks inline in close() until it drains; consider more threads",
                pending,
                self.threads,
            )


_default: OffloadPool | None = None


def default_pool() -> OffloadPool:
    """The process's shared pool, created on first use with the default sizes."""
    global _default
    if _default is None:
        _default = OffloadPool()
    return _default
