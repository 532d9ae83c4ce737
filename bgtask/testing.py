"""Helpers for testing apps that queue background tasks.

Werkzeug's ``Client`` and Flask's ``test_client()`` do not close responses, and tasks run
in ``close()``: without :func:`closing_client` they silently never run in tests.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ._backend import override_backend
from ._events import subscribe, unsubscribe
from ._logging import CAPTURED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._events import TaskEvent
    from ._request import RequestTasks

__all__ = ["CapturedTasks", "QueuedTask", "capture_tasks", "closing_client"]

C = TypeVar("C")


def closing_client(client: C) -> C:
    """Make a Werkzeug or Flask test client close every response it returns.

    Each request's background tasks then run before ``client.get(...)`` returns, as they
    would under a real server after the response was sent. Returns the same client.

    >>> from flask import Flask
    >>> client = closing_client(Flask(__name__).test_client())
    """
    open_request = client.open  # type: ignore[attr-defined]
    # buffered=True makes Werkzeug read the whole body and call close(); an explicit
    # buffered=False in a call still wins, for tests of streaming.
    client.open = functools.partial(open_request, buffered=True)  # type: ignore[attr-defined]
    return client


class QueuedTask(NamedTuple):
    """A task a request queued: its function and arguments, as given to ``add_task``.

    >>> QueuedTask(print, ("a@b.c",), {})
    QueuedTask(func=<built-in function print>, args=('a@b.c',), kwargs={})
    """

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class CapturedTasks(list[QueuedTask]):
    """The tasks queued during a :func:`capture_tasks` block, in order.

    >>> queued = CapturedTasks([QueuedTask(print, ("a@b.c",), {"sep": ""})])
    >>> queued.funcs == [print], queued.queued(print, "a@b.c", sep="")
    (True, True)
    """

    @property
    def funcs(self) -> list[Callable[..., Any]]:
        """The queued functions, in order."""
        return [queued.func for queued in self]

    def queued(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> bool:
        """Whether ``func(*args, **kwargs)`` was queued."""
        return QueuedTask(func, args, kwargs) in self


class _Recorder:
    """A listener of the task events: records what requests queue."""

    __slots__ = ("tasks",)

    def __init__(self) -> None:
        self.tasks = CapturedTasks()

    def __call__(self, event: TaskEvent) -> None:
        task = event.task
        if event.kind == "queued" and event.environ is not None:
            self.tasks.append(QueuedTask(task.func, task.args, dict(task.kwargs)))


class _NotRunning:
    """The backend of requests started under ``capture_tasks(run=False)``: runs nothing."""

    def submit(self, tasks: RequestTasks, /) -> None:
        tasks.discard(reason=CAPTURED)


@contextmanager
def capture_tasks(*, run: bool = True) -> Iterator[CapturedTasks]:
    """Record every task that requests queue during the block, in order.

    With ``run=False`` the tasks of requests started in the block are recorded but not run.

    >>> with capture_tasks(run=False) as queued:
    ...     pass  # client.post("/signup", data={"email": "a@b.c"})
    >>> queued.funcs
    []
    """
    recorder = _Recorder()
    subscribe(recorder)
    if not run:
        override_backend(_NotRunning())
    try:
        yield recorder.tasks
    finally:
        unsubscribe(recorder)
        if not run:
            override_backend(None)
