"""A count of work in progress that other threads can wait to see reach zero."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from ._native import allocate_lock

__all__ = ["Pending"]


class Pending:
    """How much work is under way, and a way to wait until there is none.

    Shared by the private loop (chains in flight) and the offload pool (collections queued
    or running). A native lock guards it: the loop and pool threads take it too.

    >>> pending = Pending()
    >>> pending.add()
    >>> pending.wait(timeout=0)
    False
    >>> pending.done()
    >>> pending.wait(timeout=0)
    True
    """

    __slots__ = ("_count", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock: Any = allocate_lock()
        self._count = 0
        self._waiters: list[concurrent.futures.Future[None]] = []

    def add(self, count: int = 1) -> None:
        """``count`` more pieces of work started."""
        with self._lock:
            self._count += count

    def done(self, count: int = 1) -> None:
        """``count`` pieces of work ended; wake the waiters if none is left."""
        with self._lock:
            self._count -= count
            if self._count or not self._waiters:
                return
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def wait(self, timeout: float | None) -> bool:
        """Wait until no work is left; False if ``timeout`` seconds passed first."""
        if timeout is not None and not timeout < threading.TIMEOUT_MAX:
            timeout = None  # infinity, or more than a lock can wait: no deadline
        with self._lock:
            if self._count == 0:
                return True
            idle: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._waiters.append(idle)
        try:
            idle.result(timeout)
        except concurrent.futures.TimeoutError:
            with self._lock:
                # Gone from the list unless done() just took it: a timed-out wait leaves
                # nothing behind (drain(timeout=0) may be called in a tight loop).
                if idle in self._waiters:
                    self._waiters.remove(idle)
            return idle.done()
        return True
