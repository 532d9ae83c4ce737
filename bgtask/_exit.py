"""Waiting for background work: ``drain()``, and the drain at interpreter exit.

Each place that holds pending work (the offload pool, the private event loop) registers how
to wait for it and how to cut it. At exit they are drained in order, within one deadline,
before threading joins its threads and before the standard executors stop taking work.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["drain", "exit_deadline", "register_drainer", "set_exit_timeout"]

logger: Final = logging.getLogger("bgtask")

_DEFAULT_EXIT_TIMEOUT: Final = 10.0
_exit_timeout: float | None = None


class _Drainer:
    __slots__ = ("cut", "order", "wait_idle")

    def __init__(
        self, order: int, wait_idle: Callable[[float | None], bool], cut: Callable[[], None]
    ) -> None:
        self.order = order
        self.wait_idle = wait_idle
        self.cut = cut


_drainers: list[_Drainer] = []
_hook_installed = False


def register_drainer(
    order: int, wait_idle: Callable[[float | None], bool], cut: Callable[[], None]
) -> None:
    """Drain this source of work in ``drain()`` and at exit, lowest ``order`` first.

    ``wait_idle(timeout)`` returns True once nothing is pending; ``cut()`` logs by name
    and abandons or cancels what is still pending once the exit deadline has passed.
    """
    _drainers.append(_Drainer(order, wait_idle, cut))
    _drainers.sort(key=lambda drainer: drainer.order)
    _install_exit_hook()


def drain(timeout: float | None = None) -> bool:
    """Wait until bgtask has no pending background work; True when it all finished in time.

    Covers tasks handed to the offload pool and async tasks on the private event loop.
    Returns at once when there are none.

    >>> drain(timeout=5.0)
    True
    """
    deadline = None if timeout is None or math.isinf(timeout) else time.monotonic() + timeout
    for drainer in list(_drainers):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not drainer.wait_idle(remaining):
            return False
    return True


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
    if drain(exit_deadline()):
        return
    for drainer in list(_drainers):
        drainer.cut()


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
