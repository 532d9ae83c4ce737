"""Helpers for testing apps that queue background tasks.

Werkzeug's ``Client`` and Flask's plain ``test_client()`` do not close responses, and tasks
run in ``close()``: :func:`closing_client` makes a client close them (an app with ``BgTask``
installed gets such a client from ``app.test_client()`` already), and :func:`capture_tasks`
fails the test when a request's tasks never ran, instead of letting it pass in silence.
The same as pytest fixtures: ``bgtask_tasks``, ``bgtask_tasks_not_run`` and
``bgtask_client`` (``bgtask.pytest_plugin``, loaded by pytest when bgtask is installed).
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from ._backend import override_backend
from ._closing import UNCLOSED
from ._events import subscribe, unsubscribe
from ._exit import drain
from ._logging import CAPTURED

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ._events import TaskEvent
    from ._request import RequestTasks
    from ._task import BackgroundTask

__all__ = ["CapturedTasks", "QueuedTask", "TasksNotRun", "capture_tasks", "closing_client"]

C = TypeVar("C")

#: How long the end of a capture waits for offloaded tasks before judging what ran.
DRAIN_SECONDS: Final = 10.0


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

    def means(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> bool:
        """Whether this is the call ``func(*args, **kwargs)``: the same function, and the
        same arguments once both are bound to its signature (``f("a")`` is ``f(to="a")``).

        >>> def send(to: str, subject: str = "") -> None: ...
        >>> QueuedTask(send, (), {"to": "a"}).means(send, "a", subject="")
        True
        """
        if func is not self.func:
            return False
        return _bound(func, args, kwargs) == _bound(func, self.args, self.kwargs)


def _bound(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):  # no readable signature, or it does not bind
        return (args, kwargs)
    bound.apply_defaults()
    return bound.arguments


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
        """Whether ``func(*args, **kwargs)`` was queued (compared as :meth:`QueuedTask.means`)."""
        return any(queued.means(func, *args, **kwargs) for queued in self)


class TasksNotRun(AssertionError):
    """Raised at the end of a ``capture_tasks()`` block whose requests' tasks never ran.

    >>> raise TasksNotRun(["myapp.send_welcome_email"])
    Traceback (most recent call last):
    ...
    bgtask.testing.TasksNotRun: 1 background task queued during capture_tasks() never ran: ...
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            f"{len(names)} background task{'s' if len(names) != 1 else ''} queued during "
            f"capture_tasks() never ran: {', '.join(names)}. Their responses were not "
            "closed: a WSGI server closes every response, Werkzeug's and Flask's test "
            "clients do not. Use bgtask.testing.closing_client(client) (an app with "
            "BgTask(app) installed gets one from app.test_client()), or the bgtask_client "
            "fixture, or read each response and close it"
        )
        self.names = names


class _Recorder:
    """A listener of the task events: records what requests queue, and what became of it."""

    __slots__ = ("handles", "tasks", "unclosed")

    def __init__(self) -> None:
        self.tasks = CapturedTasks()
        self.handles: list[BackgroundTask] = []
        #: Tasks discarded because their response was dropped without close().
        self.unclosed: set[int] = set()

    def __call__(self, event: TaskEvent) -> None:
        task = event.task
        if event.kind == "queued" and event.environ is not None:
            self.tasks.append(QueuedTask(task.func, task.args, dict(task.kwargs)))
            self.handles.append(task)
        elif event.kind == "discarded" and event.reason == UNCLOSED:
            self.unclosed.add(task.id)

    def never_ran(self) -> list[str]:
        """The names of recorded tasks that were neither run nor deliberately dropped."""
        return [
            task.name
            for task in self.handles
            if task.state in ("queued", "running")
            or task.id in self.unclosed
            or (task.state == "handed_off" and task.started_at is None and task.ended_at is None)
        ]


class _NotRunning:
    """The backend of requests started under ``capture_tasks(run=False)``: runs nothing."""

    def submit(self, tasks: RequestTasks, /) -> None:
        tasks.discard(reason=CAPTURED)


@contextmanager
def capture_tasks(*, run: bool = True) -> Iterator[CapturedTasks]:
    """Record every task that requests queue during the block, in order.

    With ``run=True`` (the default) the tasks run as usual, and the block raises
    :class:`TasksNotRun` at its end if a request's tasks never ran (the test client did not
    close the response): a test cannot pass while no task ran. Offloaded tasks are waited
    for first. With ``run=False`` the tasks of requests started in the block are recorded
    but not run.

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
    if run and recorder.handles:
        drain(DRAIN_SECONDS)
        never_ran = recorder.never_ran()
        if never_ran:
            raise TasksNotRun(never_ran)
