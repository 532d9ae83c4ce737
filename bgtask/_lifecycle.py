"""The one place where a task changes state: each transition is decided and announced here.

    created -> queued -> running -> succeeded | failed | timed_out
                      -> skipped | discarded | handed_off | cut
    handed_off -> running            (the offload pool, or this process after an outage)
    running -> retrying -> running   (it failed, and its retry policy has retries left)
    running | retrying -> cut        (a deadline passed while it ran, or waited to retry)

"overdue" is an event, not a state: a sync task ran past its deadline and runs on.

A cut task stays cut: at a deadline the process is ending, and an outcome that arrives
afterwards is not announced. When a task of a request's collection reaches its final state
it lets go of its function and arguments (``collection.releases_tasks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._clock import now
from ._events import announce

if TYPE_CHECKING:
    from ._events import Kind, Mode
    from ._task import BackgroundTask, State

__all__ = [
    "cut",
    "discarded",
    "ended",
    "handed_off",
    "overdue",
    "queued",
    "retrying",
    "skipped",
    "started",
    "timed_out",
]


def queued(task: BackgroundTask, collection: object) -> None:
    """``task`` joined ``collection`` (``add_task``, a response's or a route's tasks)."""
    task.state = "queued"
    task.error = None
    task._queued = now()
    task._started = task._ended = 0.0
    announce("queued", task, collection)


def started(task: BackgroundTask, collection: object, mode: Mode) -> bool:
    """``task`` starts running; False if it was cut meanwhile (then it must not run)."""
    if task.state == "cut":
        return False
    task.state = "running"
    task._started = now()
    task.attempts += 1
    announce("started", task, collection, mode)
    return True


def retrying(
    task: BackgroundTask, collection: object, mode: Mode, error: BaseException, reason: str
) -> None:
    """``task`` raised ``error`` and will run again (``reason``: which attempt, when)."""
    if task.state == "cut":
        return
    task.state = "retrying"
    task.error = error
    announce("retrying", task, collection, mode, reason)


def timed_out(
    task: BackgroundTask, collection: object, mode: Mode, error: BaseException, reason: str
) -> None:
    """``task`` (async) was cancelled at its deadline: a failure, named with its limit."""
    task.error = error
    _end(task, collection, "timed_out", "timed_out", mode, reason)


def overdue(task: BackgroundTask, collection: object, mode: Mode, reason: str) -> None:
    """``task`` (sync) is still running past its deadline; it cannot be interrupted."""
    if task.state != "running" or task.overdue:
        return
    task.overdue = True
    announce("overdue", task, collection, mode, reason)


def ended(
    task: BackgroundTask, collection: object, mode: Mode, error: BaseException | None
) -> None:
    """``task`` returned (``error`` None) or raised ``error``."""
    if error is None:
        _end(task, collection, "succeeded", "succeeded", mode)
    else:
        task.error = error
        _end(task, collection, "failed", "failed", mode)


def skipped(task: BackgroundTask, collection: object, mode: Mode) -> None:
    """An earlier task of its collection failed and the collection stops at a failure."""
    _end(task, collection, "skipped", "skipped", mode, "an earlier task of its collection failed")


def discarded(task: BackgroundTask, collection: object, reason: str) -> None:
    """Dropped before it ran: the view raised, ``discard()``, a transaction rolled back."""
    _end(task, collection, "discarded", "discarded", "inline", reason)


def cut(task: BackgroundTask, collection: object, mode: Mode, reason: str) -> None:
    """A deadline passed before it ran, or while it ran."""
    _end(task, collection, "cut", "cut", mode, reason)


def handed_off(
    task: BackgroundTask, collection: object, mode: Mode, destination: str, *, final: bool
) -> None:
    """Given to ``destination`` to run: a worker of another process (``final``), or the
    offload pool of this one."""
    if final:
        _end(task, collection, "handed_off", "handed_off", mode, destination)
        return
    task.state = "handed_off"
    announce("handed_off", task, collection, mode, destination)


def _end(
    task: BackgroundTask,
    collection: object,
    state: State,
    kind: Kind,
    mode: Mode,
    reason: str | None = None,
) -> None:
    if task.state == "cut":
        return
    task.state = state
    task._ended = now()
    announce(kind, task, collection, mode, reason)
    if getattr(collection, "releases_tasks", False):
        task.release()
