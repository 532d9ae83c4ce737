"""A per-process pool of native threads that runs work items, bounded by the exit drain.

It runs what it is handed (``Work``: a ``run()`` that never raises, and a ``cut(reason)``
for a deadline) and knows nothing of requests. A work item waits in the queue only while
the queue could drain within half the exit timeout (an estimate from how long this pool's
items take and its threads; one waiting per thread until one has finished), and never
beyond ``max_pending``: past that, ``submit`` says no and the caller runs the work itself.

Threads are native (gevent's originals when it has monkey-patched ``threading``) and wait on
native locks, so a greenlet handing work over never blocks its hub.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Final, Protocol

from ._exit import exit_deadline, register_drainer
from ._native import allocate_lock, get_ident, start_thread
from ._pending import Pending
from ._process import PerProcess

__all__ = ["ThreadPool", "Work"]

#: The share of the exit timeout a full queue may take to drain (the rest: what is running,
#: and the loop's async tasks, which drain after the pool).
_DRAIN_SHARE: Final = 0.5
#: Weight of the newest duration in the moving average of an item's run time.
_WEIGHT: Final = 0.1


class Work(Protocol):
    """What the pool runs."""

    def run(self) -> None:
        """Do the work; never raises."""

    def cut(self, reason: str, /) -> None:
        """A deadline passed before or while it ran: name what it had left, stop starting."""


class _Worker:
    """One pool thread: its wake-up lock and the item it was handed."""

    __slots__ = ("wake", "work")

    def __init__(self, work: Work) -> None:
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
        #: Items queued or running, for drain().
        self.pending = Pending()


class ThreadPool:
    """Up to ``threads`` native threads running work items, and a bounded queue."""

    def __init__(self, threads: int, max_pending: int) -> None:
        self.threads = threads
        self.max_pending = max_pending
        self._state: PerProcess[_State] = PerProcess(_State)
        register_drainer(0, self)

    def submit(self, work: Work) -> bool:
        """Run ``work`` on a pool thread; False (nothing done) when the queue is full."""
        state = self._state.get()
        with state.lock:
            if state.idle:
                worker = state.idle.pop()
                worker.work = work
                state.running[work] = time.monotonic()
                state.pending.add()
                worker.wake.release()
                return True
            if state.threads < self.threads:
                state.threads += 1
                state.running[work] = time.monotonic()
                state.pending.add()
            elif len(state.queue) < self.bound(state):
                state.queue.append(work)
                state.pending.add()
                return True
            else:
                return False
        try:
            start_thread(self._serve, state, _Worker(work))
        except RuntimeError:
            # No new threads once the interpreter is finalizing (3.12+): the caller runs it.
            with state.lock:
                state.threads -= 1
                del state.running[work]
            state.pending.done()
            return False
        return True

    def bound(self, state: _State) -> int:
        """How many items may wait: what drains within half the exit timeout at this
        pool's rate, at most ``max_pending``."""
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

    def wait_idle(self, timeout: float | None, /) -> bool:
        """Wait until nothing is queued or running; True when that happened in time."""
        state = self._state.peek()
        if state is None:
            return True
        if get_ident() in state.thread_ids:
            msg = (
                "cannot wait for the offload pool from one of its own tasks: it would wait "
                "for itself; return from the task instead"
            )
            raise RuntimeError(msg)
        return state.pending.wait(timeout)

    def cut(self, reason: str, /) -> None:
        """At a deadline: drop what never started and tell every item, queued or running."""
        state = self._state.peek()
        if state is None:
            return
        with state.lock:
            dropped = list(state.queue)
            state.queue.clear()
            running = list(state.running)
        for work in dropped:
            work.cut(reason)
        state.pending.done(len(dropped))
        for work in running:
            work.cut(reason)

    def _serve(self, state: _State, worker: _Worker) -> None:
        state.thread_ids.add(get_ident())
        work = worker.work
        while work is not None:
            began = time.monotonic()
            work.run()
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
            state.pending.done()
            if work is None:
                worker.wake.acquire()  # until submit() hands this thread an item
                work = worker.work
