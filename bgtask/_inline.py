"""Inline runs: a request's tasks run in the server's thread, inside ``close()``.

They are pending work like offloaded ones: ``drain()`` and the exit drain wait for them (on
gthread, a task still running when the worker exits holds a pool thread the interpreter
joins), and a deadline names the tasks they had left instead of letting gunicorn's SIGKILL
end them without a line.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from ._exit import register_drainer
from ._pending import Pending
from ._process import PerProcess
from ._run import run_here

if TYPE_CHECKING:
    from ._policy import Run

__all__ = ["run_inline"]


class _Runs:
    """The runs in progress in this process, by thread (or greenlet)."""

    def __init__(self) -> None:
        # Keyed by threading.get_ident(), looked up per call: under gevent it is patched to
        # tell greenlets apart, and every greenlet shares one native thread.
        self.running: dict[int, Run] = {}
        self.pending = Pending()


_runs: Final[PerProcess[_Runs]] = PerProcess(_Runs)


def run_inline(run: Run) -> None:
    """Drive ``run`` in this thread, counted as pending work until it ends.

    Raises only what tells the process to stop.
    """
    runs = _runs.get()
    thread = threading.get_ident()
    outer = runs.running.get(thread)  # a run inside a run: an offload fallback, say
    runs.running[thread] = run
    runs.pending.add()
    try:
        run_here(run)
    finally:
        runs.pending.done()
        if outer is None:
            del runs.running[thread]
        else:
            runs.running[thread] = outer


class _InlineDrainer:
    """The inline runs as ``_exit`` drains them."""

    def wait_idle(self, timeout: float | None, /) -> bool:
        runs = _runs.peek()
        if runs is None:
            return True
        if threading.get_ident() in runs.running:
            msg = (
                "cannot wait for bgtask's pending work from one of its own tasks: it would "
                "wait for itself; return from the task instead"
            )
            raise RuntimeError(msg)
        return runs.pending.wait(timeout)

    def cut(self, reason: str, /) -> None:
        runs = _runs.peek()
        if runs is not None:
            for run in list(runs.running.values()):
                run.cut(reason)


_DRAINER: Final = _InlineDrainer()  # held here: the exit drain holds its drainers weakly
# First: a request's inline tasks may still hand work to the pool or the loop.
register_drainer(-1, _DRAINER)
