"""Native helper threads for hand-offs, kept idle between them and reused.

Starting a thread per request costs about 55 µs, and the engines' per-thread state
(Celery's producer identity, redis-py's) costs more again on each new thread: measured,
close() to a local Redis or RabbitMQ paid 180-450 µs for the deadline with a thread per
hand-off, and about 45 µs with reused ones. An idle helper exits after ``IDLE_SECONDS``;
a forked child starts afresh (it has none of its parent's threads).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from ._native import allocate_lock, start_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    #: Runs on a helper; calls its argument once the helper may take the next work.
    Work = Callable[[Callable[[], None]], None]

__all__ = ["IDLE_SECONDS", "helpers"]

#: How long an idle helper thread waits for the next hand-off before it exits.
IDLE_SECONDS: Final = 60.0


class _Helper:
    """One helper thread: its wake-up lock and the work it was given."""

    __slots__ = ("wake", "work")

    def __init__(self, work: Work) -> None:
        self.wake: Any = allocate_lock()
        self.wake.acquire()
        self.work: Work | None = work


class _Helpers:
    """The idle helper threads of this process.

    >>> import threading
    >>> done = threading.Event()
    >>> helpers.start(lambda park: (park(), done.set()))
    >>> done.wait(5)
    True
    """

    __slots__ = ("idle", "lock", "pid")

    def __init__(self) -> None:
        self.lock: Any = allocate_lock()
        self.idle: list[_Helper] = []
        self.pid = os.getpid()

    def start(self, work: Work) -> None:
        """Run ``work(park)`` on an idle helper, or a new one."""
        with self.lock:
            if self.pid != os.getpid():
                self.idle, self.pid = [], os.getpid()
            helper = self.idle.pop() if self.idle else None
        if helper is None:
            start_thread(self._serve, _Helper(work), name="bgtask-handoff")
        else:
            helper.work = work
            helper.wake.release()

    def _serve(self, helper: _Helper) -> None:
        def park() -> None:
            with self.lock:
                self.idle.append(helper)

        while helper.work is not None:
            work, helper.work = helper.work, None
            work(park)
            if not helper.wake.acquire(True, IDLE_SECONDS):
                with self.lock:
                    if helper in self.idle:
                        self.idle.remove(helper)
                        return
                helper.wake.acquire()  # taken just as it timed out: its work is coming


helpers: Final = _Helpers()
