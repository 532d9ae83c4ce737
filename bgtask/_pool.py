"""A per-process pool of native threads that runs work items, sized by its load.

It runs what it is handed (``Work``: a callable that never raises) and knows nothing of
requests. Threads start as work arrives with no idle thread to take it, up to ``threads``,
and exit after ``idle_timeout`` seconds without work, so the pool is as large as the load
needs and no larger. A thread that finishes an item takes the next waiting one without a
wake-up. A work item waits in the queue only while the queue could drain within half the
exit timeout (an estimate from how long this pool's items take and its threads; one waiting
per thread until one has finished), and never beyond ``max_pending``: past that, ``submit``
says no and the caller runs the work itself.

Threads are native (gevent's originals when it has monkey-patched ``threading``) and wait on
native locks, so a greenlet handing work over never blocks its hub.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any, Final, Protocol

from ._exit import exit_deadline
from ._native import allocate_lock, get_ident, start_thread
from ._process import PerProcess

__all__ = ["ThreadPool", "Work"]

#: The share of the exit timeout a full queue may take to drain (the rest: what is running,
#: and the loop's async tasks, which drain after the pool).
_DRAIN_SHARE: Final = 0.5
#: Weight of the newest duration in the moving average of an item's run time.
_WEIGHT: Final = 0.1


class Work(Protocol):
    """What the pool runs."""

    def __call__(self) -> None:
        """Do the work; never raises."""


class _Worker:
    """One pool thread: its wake-up lock and the item it was handed."""

    __slots__ = ("wake", "work")

    def __init__(self, work: Work | None) -> None:
        self.wake: Any = allocate_lock()
        self.wake.acquire()
        self.work: Work | None = work


class _State:
    """The pool's threads and queue in one process."""

    def __init__(self) -> None:
        self.lock: Any = allocate_lock()
        self.queue: deque[Work] = deque()
        self.idle: list[_Worker] = []
        #: Items running now, with when they started.
        self.running: dict[Work, float] = {}
        self.threads = 0
        #: The pool threads' idents: waiting for the pool from one of them would deadlock.
        self.thread_ids: set[int] = set()
        #: How long an item takes here, a moving average (None until one finished).
        self.mean_seconds: float | None = None


class ThreadPool:
    """Up to ``threads`` native threads running work items, and a bounded queue."""

    def __init__(self, threads: int, max_pending: int, idle_timeout: float) -> None:
        self.threads = threads
        self.max_pending = max_pending
        self.idle_timeout = idle_timeout
        self._state: PerProcess[_State] = PerProcess(_State)

    def submit(self, work: Work, *, force: bool = False) -> bool:
        """Run ``work`` on a pool thread; False (nothing done) when the queue is full, or
        no thread can be started any more (the interpreter is finalizing).

        ``force``: work already accepted (the rest of a collection that began here) waits
        even past the bound.
        """
        state = self._state.get()
        with state.lock:
            if state.idle:
                worker = state.idle.pop()  # the most recently idle: its stack is warm
                worker.work = work
                state.running[work] = time.monotonic()
                worker.wake.release()
                return True
            if state.threads < self.threads:
                state.threads += 1
                state.running[work] = time.monotonic()
            elif force or len(state.queue) < self.bound(state):
                state.queue.append(work)
                return True
            else:
                return False
        try:
            start_thread(self._serve, state, _Worker(work), name=f"bgtask-offload-{next(_numbers)}")
        except RuntimeError:
            with state.lock:
                state.threads -= 1
                del state.running[work]
            return False
        return True

    def bound(self, state: _State) -> int:
        """How many items may wait: what drains within half the exit timeout at this
        pool's rate (all its threads busy), at most ``max_pending``."""
        seconds = self.seconds_per_item(state)
        drainable = self.max_pending
        if seconds > 0:
            drainable = int(self.threads * _DRAIN_SHARE * exit_deadline() / seconds)
        if state.mean_seconds is None:
            # Nothing measured yet: a burst at startup must not fill the queue with work of
            # unknown length. One waiting item per thread until one has finished.
            drainable = min(drainable, self.threads)
        return min(self.max_pending, drainable)

    @staticmethod
    def seconds_per_item(state: _State) -> float:
        # The average so far, or the age of the oldest running item if that is more: slow
        # work counts before the first item has finished.
        oldest = min(state.running.values(), default=None)
        running = time.monotonic() - oldest if oldest is not None else 0.0
        return max(state.mean_seconds or 0.0, running)

    def state(self) -> _State:
        return self._state.get()

    def peek(self) -> _State | None:
        """This process's state, or None if the pool never ran anything here."""
        return self._state.peek()

    def on_own_thread(self) -> bool:
        """Whether the caller is one of this pool's threads."""
        state = self._state.peek()
        return state is not None and get_ident() in state.thread_ids

    def _serve(self, state: _State, worker: _Worker) -> None:
        state.thread_ids.add(get_ident())
        work = worker.work
        while work is not None:
            began = time.monotonic()
            work()
            with state.lock:
                now = time.monotonic()
                elapsed = now - state.running.pop(work, began)
                mean = state.mean_seconds
                state.mean_seconds = elapsed if mean is None else mean + _WEIGHT * (elapsed - mean)
                if state.queue:
                    work = state.queue.popleft()
                    state.running[work] = now
                else:
                    work = worker.work = None
                    state.idle.append(worker)
            if work is None:
                work = self._wait_for_work(state, worker)
        state.thread_ids.discard(get_ident())

    def _wait_for_work(self, state: _State, worker: _Worker) -> Work | None:
        """Sleep until ``submit`` hands this thread an item; None (the thread exits) after
        ``idle_timeout`` seconds without one."""
        if worker.wake.acquire(timeout=self.idle_timeout):
            return worker.work
        with state.lock:
            if worker in state.idle:
                state.idle.remove(worker)
                state.threads -= 1
                return None
        # submit() took this thread just as the wait ended: its release is on its way.
        worker.wake.acquire()
        return worker.work


#: Numbers the pool threads' names (``bgtask-offload-3``), across every pool of the process.
_numbers: Final = itertools.count(1)
