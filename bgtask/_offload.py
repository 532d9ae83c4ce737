"""Offload mode: ``close()`` hands the request's collection over and returns at once.

The server's worker or thread is free for the next request while the tasks run. Within a
collection nothing changes (one run, in order, under its error policy); different requests'
collections run concurrently. Sync tasks run on a pool of threads that sizes itself to the
load (``_pool``), async tasks on the private loop (``_relay``): an async task holds no
thread. When the pool's queue holds what the exit drain can run (or, for collections
that start with an async task, ``threads + max_pending`` of them are in flight), the next
collection runs inline in ``close()`` instead: back-pressure, never a drop, with a WARNING
at most once per ``warn_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Final

from . import _lifecycle, _loop
from ._collection import tasks_of
from ._control import install_retry_mover
from ._exit import exit_deadline, register_drainer
from ._native import allocate_lock
from ._pending import Pending
from ._policy import Run
from ._pool import ThreadPool
from ._process import PerProcess
from ._relay import Relay
from ._wording import counted

if TYPE_CHECKING:
    from ._request import RequestTasks
    from ._task import BackgroundTask

__all__ = ["OffloadPool", "default_pool", "offload_stats"]

logger: Final = logging.getLogger("bgtask")


def _default_threads() -> int:
    return min(256, (os.cpu_count() or 1) * 32)


class _InFlight:
    """The collections this pool accepted in one process and that have not ended."""

    def __init__(self) -> None:
        self.lock: Any = allocate_lock()
        #: In the order accepted (a deadline names them in that order), each with whether
        #: it started on the loop.
        self.relays: dict[Relay, bool] = {}
        #: How many of them started on the loop (the pool's queue bounds the others).
        self.on_loop = 0
        self.pending = Pending()


class OffloadPool:
    """Runs requests' task collections after ``close()``, off the server's threads.

    Sync tasks run on up to ``threads`` threads (default: 32 per CPU, at most 256), started
    as collections wait and stopped after ``idle_timeout`` seconds without work; async
    tasks run on bgtask's event loop and hold no thread. ``max_pending`` (default 1000) is
    the most collections that may wait for a thread, fewer when the exit timeout could not
    drain them; past it (or, for a collection that starts with an async task, with
    ``threads + max_pending`` such collections in flight), a collection runs inline in
    ``close()`` (back-pressure).

    >>> pool = OffloadPool(threads=8, max_pending=500)
    >>> pool.threads, pool.max_pending
    (8, 500)
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        max_pending: int = 1000,
        warn_interval: float = 60.0,
        idle_timeout: float = 10.0,
    ) -> None:
        threads = _default_threads() if threads is None else threads
        if threads < 1:
            msg = f"an offload pool needs at least one thread, got {threads}"
            raise ValueError(msg)
        if max_pending < 0:
            msg = f"max_pending must be zero or more, got {max_pending}"
            raise ValueError(msg)
        if not idle_timeout > 0:
            msg = f"idle_timeout must be more than zero seconds, got {idle_timeout}"
            raise ValueError(msg)
        self.threads = threads
        self.max_pending = max_pending
        self.warn_interval = warn_interval
        self._last_warning = -float("inf")
        self._pool = ThreadPool(threads, max_pending, idle_timeout)
        self._in_flight: PerProcess[_InFlight] = PerProcess(_InFlight)
        register_drainer(0, self)

    def __repr__(self) -> str:
        return f"<OffloadPool threads={self.threads} max_pending={self.max_pending}>"

    def submit(self, tasks: RequestTasks, /) -> None:
        """Run ``tasks`` off this thread, or inline if the pool is full. Never raises."""
        if tasks.seal_if_empty():
            return
        queued = list(tasks_of(tasks.tasks))
        for task in queued:
            _lifecycle.handed_off(task, tasks, "offload", "the offload pool", final=False)
        run = Run(tasks, "offload", tasks.scope, moves_retries=True, pool=self)
        relay = Relay(run, self._pool, self._ended)
        on_loop = bool(queued) and queued[0].is_async
        in_flight = self._in_flight.get()
        with in_flight.lock:
            # No thread bounds what starts on the loop: as many as the pool could hold.
            accepted = not on_loop or in_flight.on_loop < self.threads + self.max_pending
            if accepted:
                in_flight.relays[relay] = on_loop
                in_flight.on_loop += on_loop
                in_flight.pending.add()
        if accepted and relay.begin(on_loop):
            return
        if accepted:
            self._ended(relay)
        self._warn_full()
        tasks.run_for_request()

    def retry_later(self, run: Run, task: BackgroundTask, delay: float) -> bool:
        """Carry ``run`` on from ``task`` after ``delay`` seconds (a retry's wait): counted
        in flight meanwhile (``drain()`` and the exit drain wait for it, a deadline names
        it), holding no thread. False when no timer can be set any more."""
        relay = Relay(run, self._pool, self._ended)
        in_flight = self._in_flight.get()
        with in_flight.lock:
            in_flight.relays[relay] = False
            in_flight.pending.add()
        if relay.resume_after(task, delay):
            return True
        self._ended(relay)
        return False

    def _ended(self, relay: Relay) -> None:
        in_flight = self._in_flight.get()
        with in_flight.lock:
            in_flight.on_loop -= in_flight.relays.pop(relay, False)
        in_flight.pending.done()

    def wait_idle(self, timeout: float | None = None, /) -> bool:
        """Wait until no collection is queued or running; True when that happened in time."""
        in_flight = self._in_flight.peek()
        if in_flight is None:
            return True
        if self._pool.on_own_thread():
            msg = (
                "cannot wait for the offload pool from one of its own tasks: it would wait "
                "for itself; return from the task instead"
            )
            raise RuntimeError(msg)
        _loop.refuse_inside()  # an async task waiting for its own collection
        return in_flight.pending.wait(timeout)

    def cut(self, reason: str, /) -> None:
        """At a deadline: every collection in flight names what it had left, starts no more."""
        in_flight = self._in_flight.peek()
        if in_flight is None:
            return
        with in_flight.lock:
            relays = list(in_flight.relays)
        for relay in relays:
            relay.cut(reason)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_warning < self.warn_interval:
            return
        self._last_warning = now
        state = self._pool.state()
        in_flight = self._in_flight.get()
        logger.warning(
            "offload pool full (%s in flight, %s waiting for a thread, %s running, %.3f s per "
            "collection; the queue may hold what drains in half the %g s exit timeout, at "
            "most %d): running tasks inline in close() until it drains; consider more threads",
            counted(len(in_flight.relays), "collection"),
            counted(len(state.queue), "collection"),
            counted(state.threads, "thread"),
            self._pool.seconds_per_item(state),
            exit_deadline(),
            self.max_pending,
        )


def _move_retry(run: Run, task: BackgroundTask, delay: float) -> bool:
    # A request's inline run leaves close() for the default pool; an offloaded one stays
    # with its own pool.
    pool = run.pool if isinstance(run.pool, OffloadPool) else default_pool()
    run.mode = "offload"
    return pool.retry_later(run, task, delay)


install_retry_mover(_move_retry)

_default: OffloadPool | None = None


def default_pool() -> OffloadPool:
    """The process's shared pool, created on first use with the default sizes."""
    global _default
    if _default is None:
        _default = OffloadPool()
    return _default


def offload_stats() -> tuple[int, int]:
    """Over every offload pool of this process: how many collections wait for a thread,
    and how many threads are running one (for metrics; read without locks, so a moment's
    approximation).

    >>> waiting, busy = offload_stats()
    >>> waiting >= 0 and busy >= 0
    True
    """
    from ._exit import _live_drainers  # the registry of every pool (they drain at exit)

    waiting = busy = 0
    for drainer in _live_drainers():
        state = drainer._pool.peek() if isinstance(drainer, OffloadPool) else None
        if state is not None:
            waiting += len(state.queue)
            busy += len(state.running)
    return waiting, busy
