"""Inline runs: a request's tasks run in the server's thread, inside ``close()``.

They are pending work like offloaded ones: ``drain()`` and the exit drain wait for them (on
gthread, a task still running when the worker exits holds a pool thread the interpreter
joins), and the exit deadline names the tasks they had left instead of letting gunicorn's
SIGKILL end them without a line.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Final

from ._exit import register_drainer
from ._pending import Pending

if TYPE_CHECKING:
    from ._collection import BackgroundTasks

__all__ = ["run_inline"]

logger: Final = logging.getLogger("bgtask")


class _InlineRuns:
    """The collections running inline right now, as a drainer for ``_exit``.

    Keyed by ``threading.get_ident()``, looked up per call: under gevent it is patched to
    tell greenlets apart, and every greenlet shares one native thread.
    """

    def __init__(self) -> None:
        self.running: dict[int, BackgroundTasks] = {}
        self.pending = Pending()

    def wait_idle(self, timeout: float | None, /) -> bool:
        if threading.get_ident() in self.running:
            msg = (
                "cannot wait for bgtask's pending work from one of its own tasks: it would "
                "wait for itself; return from the task instead"
            )
            raise RuntimeError(msg)
        return self.pending.wait(timeout)

    def cut(self, reason: str, /) -> None:
        names = [name for tasks in list(self.running.values()) for name in tasks.names_left()]
        if names:
            logger.error(
                "%s with inline tasks still running (they end with the process): %s",
                reason,
                ", ".join(names),
            )


_RUNS: Final = _InlineRuns()
# First: a request's inline tasks may still hand work to the pool or the loop.
register_drainer(-1, _RUNS)


def run_inline(tasks: BackgroundTasks) -> None:
    """Run a request's ``tasks`` in this thread, counted as pending work while they run."""
    if tasks.seal_if_empty():
        return
    thread = threading.get_ident()
    outer = _RUNS.running.get(thread)  # a run inside a run: an offload fallback, say
    _RUNS.running[thread] = tasks
    _RUNS.pending.add()
    try:
        tasks.run_for_request()
    finally:
        _RUNS.pending.done()
        if outer is None:
            del _RUNS.running[thread]
        else:
            _RUNS.running[thread] = outer
