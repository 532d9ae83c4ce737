"""Waiting for background work: ``drain()``, and the drain at interpreter exit.

Each place that holds pending work (the offload pool, the private event loop) registers how
to wait for it and how to cut it. At exit they are drained in order, within one deadline,
before threading joins its threads and before the standard executors stop taking work.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import logging
import math
import operator
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Drainer",
    "cut_all",
    "drain",
    "exit_deadline",
    "register_drainer",
    "set_exit_heartbeat",
    "set_exit_timeout",
]

logger: Final = logging.getLogger("bgtask")

_DEFAULT_EXIT_TIMEOUT: Final = 10.0
_exit_timeout: float | None = None


class Drainer(Protocol):
    """A source of pending work: the offload pool, the private event loop."""

    def wait_idle(self, timeout: float | None, /) -> bool:
        """True once nothing is pending; False if ``timeout`` seconds passed first."""

    def cut(self, reason: str, /) -> None:
        """At a deadline (``reason`` says which): log by name, and abandon or cancel, what
        is pending."""


#: (order, drainer), weakly held: a pool that is gone has nothing left to drain.
_drainers: list[tuple[int, weakref.ref[Drainer]]] = []
_ORDER: Final = operator.itemgetter(0)
_hook_installed = False
#: Called at least every second while the exit drain waits (gunicorn's heartbeat).
_heartbeat: Callable[[], object] | None = None
_HEARTBEAT_INTERVAL: Final = 1.0


def register_drainer(order: int, drainer: Drainer) -> None:
    """Drain ``drainer`` in ``drain()`` and at exit, lowest ``order`` first."""
    # One insertion, no sort: a weakref callback may remove an entry at any point.
    bisect.insort(_drainers, (order, weakref.ref(drainer, _forget)), key=_ORDER)
    _install_exit_hook()


def _forget(gone: weakref.ref[Drainer]) -> None:
    # The drainer (a pool nobody holds any more) is gone: so is its entry.
    for entry in list(_drainers):
        if entry[1] is gone:
            with contextlib.suppress(ValueError):
                _drainers.remove(entry)


def _live_drainers() -> list[Drainer]:
    return [drainer for _, ref in list(_drainers) if (drainer := ref()) is not None]


def drain(timeout: float | None = None) -> bool:
    """Wait until bgtask has no pending background work; True when it all finished in time.

    Covers tasks handed to the offload pool and async tasks on the private event loop.
    Returns at once when there are none. Raises ``RuntimeError`` when called from a task
    it would wait for (an async task, or an offloaded one).

    >>> drain(timeout=5.0)
    True
    """
    return _drain(timeout, heartbeat=None)


def _drain(timeout: float | None, heartbeat: Callable[[], object] | None) -> bool:
    if timeout is not None and not timeout < threading.TIMEOUT_MAX:
        timeout = None  # infinity, or more than a lock can wait: no deadline
    deadline = None if timeout is None else time.monotonic() + timeout
    for drainer in _live_drainers():
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if heartbeat is None:
                if not drainer.wait_idle(remaining):
                    return False
                break
            try:
                heartbeat()
            except Exception:
                logger.warning("the exit heartbeat failed; draining without it")
                heartbeat = None
                continue
            step = _HEARTBEAT_INTERVAL if remaining is None else min(remaining, _HEARTBEAT_INTERVAL)
            if drainer.wait_idle(step):
                break
            if remaining is not None and remaining <= step:
                return False
    return True


def set_exit_heartbeat(heartbeat: Callable[[], object] | None) -> None:
    """Call ``heartbeat`` every second while the exit drain waits (None: no heartbeat).

    gunicorn kills a worker that stops notifying its master for ``timeout`` seconds, and a
    worker draining at exit (after ``--max-requests``, or a reload) notifies nothing: the
    ``bgtask.gunicorn`` hook passes the worker's ``notify`` here.
    """
    global _heartbeat
    _heartbeat = heartbeat


def set_exit_timeout(seconds: float) -> None:
    """Set how long interpreter exit waits for pending background work (default 10 s).

    Keep it under gunicorn's ``graceful_timeout`` so the drain ends before SIGKILL.
    The environment variable ``BGTASK_EXIT_TIMEOUT`` sets the same, in seconds.

    >>> set_exit_timeout(10.0)
    """
    global _exit_timeout
    if not seconds >= 0:  # also refuses NaN
        msg = f"the exit timeout must be zero or more seconds, got {seconds}"
        raise ValueError(msg)
    _exit_timeout = seconds


def exit_deadline() -> float:
    """Seconds the exit drain may take: ``set_exit_timeout``, else the environment, else 10."""
    if _exit_timeout is not None:
        return _exit_timeout
    configured = os.environ.get("BGTASK_EXIT_TIMEOUT")
    if configured:
        try:
            seconds = float(configured)
        except ValueError:
            seconds = math.nan
        if seconds >= 0:
            return seconds
        logger.warning("ignoring BGTASK_EXIT_TIMEOUT=%r: not a number of seconds", configured)
    return _DEFAULT_EXIT_TIMEOUT


def _drain_at_exit() -> None:
    if _drain(exit_deadline(), _heartbeat):
        return
    cut_all("exit deadline passed")


def cut_all(reason: str) -> None:
    """Cut every drainer's pending work, each naming what it cut after ``reason``."""
    for drainer in _live_drainers():
        drainer.cut(reason)


def _install_exit_hook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True
    # threading runs its exit hooks last-registered first. Importing the executors' module
    # now registers their shutdown before our drain, so it runs after it: a task being
    # drained can still use asyncio.to_thread and run_in_executor. (RuntimeError: the
    # interpreter is already shutting down, there is nothing left to order.)
    with contextlib.suppress(RuntimeError):
        import concurrent.futures.thread  # noqa: F401
    try:
        threading._register_atexit(_drain_at_exit)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        # Too late for threading's hooks (or a Python without them): atexit still runs.
        atexit.register(_drain_at_exit)
