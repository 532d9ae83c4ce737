"""The stream of task events: every transition of every task, told to the listeners.

Logging, ``bgtask.testing.capture_tasks``, the demo's timeline, metrics and traces all
listen here. A listener is called in the thread where the transition happens (for a task,
inside the task's own contextvars context), must be quick, and may raise: its exception is
logged once (per listener) and never reaches the task, the response or another listener.
Events carry names, times and exceptions, never argument values.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from ._clock import now, wall_time
from ._logging import log_event, logs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._task import BackgroundTask

__all__ = ["Kind", "Listener", "Mode", "TaskEvent", "announce", "subscribe", "unsubscribe"]

logger: Final = logging.getLogger("bgtask")

#: What happened to a task.
Kind: TypeAlias = Literal[
    "queued", "started", "succeeded", "failed", "skipped", "discarded", "cut", "handed_off",
    "retrying", "timed_out", "overdue",
]  # fmt: skip
#: Where it ran (or was sent): in ``close()``, on the offload pool, on an engine's worker,
#: or in this process after an engine could not be reached.
Mode: TypeAlias = Literal["inline", "offload", "rq", "celery", "fallback"]
Listener: TypeAlias = "Callable[[TaskEvent], object]"


class TaskEvent:
    """One transition of one task, as listeners see it.

    ``task`` is the task itself (its handle: ``name``, ``state``, ``id``), ``collection``
    the collection it belongs to, ``reason`` why it was skipped, discarded or cut, or where
    it was handed off.
    """

    __slots__ = ("_at", "collection", "kind", "mode", "reason", "task")

    def __init__(
        self,
        kind: Kind,
        task: BackgroundTask,
        collection: object,
        mode: Mode,
        reason: str | None,
    ) -> None:
        self.kind: Kind = kind
        self.task = task
        self.collection = collection
        self.mode: Mode = mode
        self.reason = reason
        self._at = now()

    @property
    def name(self) -> str:
        """The task's qualified function name."""
        return self.task.name

    @property
    def at(self) -> float:
        """When it happened, in seconds since the epoch."""
        return wall_time(self._at) or 0.0

    @property
    def error(self) -> BaseException | None:
        """What a failed task raised."""
        return self.task.error if self.kind in ("failed", "retrying", "timed_out") else None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, for a task that ran and ended."""
        task = self.task
        if task._started and task._ended:
            return task._ended - task._started
        return None

    @property
    def wait(self) -> float | None:
        """Seconds from the response being sent (or the task being queued) to its start."""
        task = self.task
        if not task._started:
            return None
        sent: float = getattr(self.collection, "sent", 0.0) or task._queued
        return max(0.0, task._started - sent) if sent else None

    @property
    def environ(self) -> Mapping[str, Any] | None:
        """The WSGI environ of the request that queued the task, if a request did."""
        environ: Mapping[str, Any] | None = getattr(self.collection, "environ", None)
        return environ

    def __repr__(self) -> str:
        return f"<TaskEvent {self.kind} {self.name}>"


#: The process's listeners; logging is the first, always there.
_ONLY_LOGGING: Final[tuple[Listener, ...]] = (log_event,)
_listeners: tuple[Listener, ...] = _ONLY_LOGGING
#: Listeners whose failure was logged (the objects: a bound method's id changes per access).
_failing: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Tell ``listener`` of every task event in this process, from now on."""
    global _listeners
    _listeners = (*_listeners, listener)


def unsubscribe(listener: Listener) -> None:
    """Stop telling ``listener`` (the first subscription of it, if it subscribed twice)."""
    global _listeners
    listeners = list(_listeners)
    if listener in listeners:
        listeners.remove(listener)
    _listeners = tuple(listeners)


def announce(
    kind: Kind,
    task: BackgroundTask,
    collection: object,
    mode: Mode = "inline",
    reason: str | None = None,
) -> None:
    """Tell the process's listeners, then the collection's own, that ``kind`` happened."""
    own: tuple[Listener, ...] = getattr(collection, "listeners", ())
    listeners = _listeners + own if own else _listeners
    if listeners is _ONLY_LOGGING and not logs(kind):
        return  # the common case, every task started and ended: no event object at all
    event = TaskEvent(kind, task, collection, mode, reason)
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            _report(listener)


def _report(listener: Listener) -> None:
    # Once per listener: a listener that fails on every event must not flood the log.
    if listener in _failing:
        return
    _failing.append(listener)
    logger.exception(
        "a task event listener (%r) raised; it keeps being called, its errors are not logged again",
        listener,
    )
