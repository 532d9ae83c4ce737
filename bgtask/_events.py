"""The stream of task events: every transition of every task, told to the listeners.

Logging, ``bgtask.testing.capture_tasks``, the demo's timeline, metrics and traces all
listen here. A listener is called in the thread where the transition happens (for a task,
inside the task's own contextvars context), must be quick (wrap a slow one in
:class:`~bgtask.QueuedListener`), and may raise: its exception is logged once (per
listener) and never reaches the task, the response or another listener. Events carry
names, times and exceptions, never argument values.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypeVar

from ._clock import now, wall_time
from ._logging import log_event, logs
from ._stopping import is_stop_request

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._task import BackgroundTask

__all__ = [
    "Kind",
    "Listener",
    "Mode",
    "TaskEvent",
    "announce",
    "report_failure",
    "subscribe",
    "unsubscribe",
]

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
L = TypeVar("L", bound="Callable[[TaskEvent], object]")


class TaskEvent:
    """One transition of one task, as listeners see it.

    ``kind`` is what happened (``queued``, ``started``, ``succeeded``, ``failed``,
    ``skipped``, ``discarded``, ``cut``, ``handed_off``), ``mode`` where the task runs or
    was sent (``inline``, ``offload``, ``rq``, ``celery``, ``fallback``), ``task`` the task
    itself (its handle: ``name``, ``state``, ``id``), ``collection`` the collection it
    belongs to, ``reason`` why it was skipped, discarded or cut, or where it was handed
    off. Times, the duration and the wait are those at the moment of the event, so a
    listener that reads them later (:class:`~bgtask.QueuedListener`) sees the same.

    >>> from bgtask import BackgroundTask
    >>> event = TaskEvent("queued", BackgroundTask(print), None, "inline", None)
    >>> event.kind, event.name, event.duration, event.request_id
    ('queued', 'builtins.print', None, None)
    """

    __slots__ = ("_at", "_ended", "_started", "collection", "kind", "mode", "reason", "task")

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
        self._started = task._started
        self._ended = task._ended

    @property
    def name(self) -> str:
        """The task's qualified function name."""
        return self.task.name

    @property
    def at(self) -> float:
        """When it happened, in seconds since the epoch."""
        return wall_time(self._at) or 0.0

    @property
    def queued_at(self) -> float | None:
        """When the task was queued, in seconds since the epoch."""
        return self.task.queued_at

    @property
    def started_at(self) -> float | None:
        """When it started running, in seconds since the epoch (None: not yet)."""
        return wall_time(self._started)

    @property
    def ended_at(self) -> float | None:
        """When it reached its final state, in seconds since the epoch (None: not yet)."""
        return wall_time(self._ended)

    @property
    def error(self) -> BaseException | None:
        """What a failed task raised."""
        return self.task.error if self.kind in ("failed", "retrying", "timed_out") else None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, for a task that ran and ended."""
        if self._started and self._ended:
            return self._ended - self._started
        return None

    @property
    def wait(self) -> float | None:
        """Seconds from the response being sent (or the task being queued) to its start."""
        if not self._started:
            return None
        sent: float = getattr(self.collection, "sent", 0.0) or self.task._queued
        return max(0.0, self._started - sent) if sent else None

    @property
    def environ(self) -> Mapping[str, Any] | None:
        """The WSGI environ of the request that queued the task, if a request did."""
        environ: Mapping[str, Any] | None = getattr(self.collection, "environ", None)
        return environ

    @property
    def request_id(self) -> str | None:
        """The id of the request that queued the task: its ``X-Request-ID`` header (the
        middleware's ``request_id_header``), else one generated for the request; None for a
        task no request queued (and in an RQ or Celery worker)."""
        request_id: str | None = getattr(self.collection, "request_id", None)
        return request_id

    def __repr__(self) -> str:
        return f"<TaskEvent {self.kind} {self.name}>"


#: The process's listeners; logging is the first, always there.
_ONLY_LOGGING: Final[tuple[Listener, ...]] = (log_event,)
_listeners: tuple[Listener, ...] = _ONLY_LOGGING
#: Listeners whose failure was logged (the objects: a bound method's id changes per access).
_failing: list[Listener] = []


def subscribe(listener: L) -> L:
    """Tell ``listener`` of every task event in this process, from now on; returns it (so
    it works as a decorator). For one app's events only, pass ``listeners=`` to
    :class:`~bgtask.BackgroundTaskMiddleware` or ``BgTask`` instead.

    >>> counts: dict[str, int] = {}
    >>> @subscribe
    ... def count(event: TaskEvent) -> None:
    ...     counts[event.kind] = counts.get(event.kind, 0) + 1
    >>> unsubscribe(count)
    """
    global _listeners
    _listeners = (*_listeners, listener)
    return listener


def unsubscribe(listener: Listener) -> None:
    """Stop telling ``listener`` (the first subscription of it, if it subscribed twice).

    >>> unsubscribe(print)  # never subscribed: nothing happens
    """
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
            report_failure(listener)
        except BaseException as error:
            # A listener's KeyboardInterrupt or custom BaseException is its own failure (let
            # out of close() it would break the connection or the worker); a stop the
            # process was asked for while it ran goes on.
            if is_stop_request(error):
                raise
            report_failure(listener)


def report_failure(listener: Listener) -> None:
    """Log that ``listener`` raised (with the traceback), the first time only."""
    # Once per listener: a listener that fails on every event must not flood the log.
    if listener in _failing:
        return
    _failing.append(listener)
    logger.exception(
        "a task event listener (%r) raised; it keeps being called, its errors are not logged again",
        listener,
    )
