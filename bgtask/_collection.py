"""An ordered collection of background tasks, and the policy that runs it."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeAlias

from . import _loop
from ._recording import recorders
from ._task import FAILED, BackgroundTask, Outcome

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Container, Iterable, Iterator
    from contextlib import AbstractContextManager

__all__ = [
    "RESPONSE_STAGE",
    "ROUTE_STAGE",
    "Around",
    "BackgroundTasks",
    "Check",
    "Item",
    "check_item",
    "names_of",
]

P = ParamSpec("P")

logger: Final = logging.getLogger("bgtask")

Item: TypeAlias = "BackgroundTask | BackgroundTasks"
#: Given a request's collection, a context manager to enter while it runs.
Around: TypeAlias = "Callable[[BackgroundTasks], AbstractContextManager[object]]"
#: A backend's check of a queued task: raises TypeError for one it could not run.
Check: TypeAlias = "Callable[[BackgroundTask], None]"

#: Where attached tasks run, after everything the request queued: first the response's
#: ``background``, then a route decorator's fixed tasks.
RESPONSE_STAGE: Final = 1
ROUTE_STAGE: Final = 2

# Guards a request collection's seal against a late add from another thread. The critical
# sections are a few list operations, so one lock for the process is enough.
_seal_lock: Final = threading.Lock()


class BackgroundTasks:
    """An ordered collection of background tasks, itself callable.

    Calling it runs the tasks in the order they were added, including tasks that running
    tasks add. When a task raises an ``Exception`` it is logged on the ``bgtask`` logger
    with its traceback, and the rest are skipped (each logged as skipped) unless
    ``continue_on_error`` is true. Calling a collection never raises an ``Exception``;
    ``SystemExit`` and ``KeyboardInterrupt`` propagate. A collection may contain another:
    the inner one runs under its own policy and its failure counts as one for the outer.

    ``add_task`` is safe to call from several threads.

    >>> def write_log(message: str) -> None: ...
    >>> tasks = BackgroundTasks()
    >>> tasks.add_task(write_log, "signed up")
    >>> tasks
    <BackgroundTasks [bgtask._collection.write_log]>
    >>> tasks()
    """

    __slots__ = (
        "_around",
        "_check",
        "_request",
        "_runs",
        "_sealed",
        "_tail",
        "continue_on_error",
        "tasks",
    )

    def __init__(
        self, tasks: Iterable[Item] | None = None, *, continue_on_error: bool = False
    ) -> None:
        self.tasks: list[Item] = []
        if tasks is not None:
            for item in tasks:
                check_item(item)
                self.tasks.append(item)
        self.continue_on_error = continue_on_error
        #: Owned by a request: recorded by capture_tasks, sealed once run or discarded.
        self._request = False
        #: The backend's extra check of each task queued (an RQ worker must import it).
        self._check: Check | None = None
        self._sealed = False
        #: (stage, item) attached by integrations, run after everything queued.
        self._tail: list[tuple[int, Item]] | None = None
        #: False while a ``capture_tasks(run=False)`` block suppresses this collection.
        self._runs = True
        #: Entered around a request's run, set by an integration (Flask's app context).
        self._around: Around | None = None

    def add_task(self, func: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Queue ``func(*args, **kwargs)``; raises ``TypeError`` now if they cannot bind.

        ``func`` is positional-only, so a task may itself take a ``func=`` keyword.
        """
        task = BackgroundTask(func, *args, **kwargs)
        if self._request:
            self._append_to_request(task)
        else:
            self.tasks.append(task)

    def __call__(self) -> None:
        self.run()

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self.tasks))

    def __repr__(self) -> str:
        names = ", ".join(_name(item) for item in self.tasks)
        return f"<BackgroundTasks [{names}]>"

    @classmethod
    def for_request(cls, check: Check | None = None) -> BackgroundTasks:
        """A fresh collection owned by one request (used by the WSGI layer).

        ``check`` is called with every task queued or attached, and raises ``TypeError``
        for one its backend could not run (the request that queued it gets the error).
        """
        # Every slot assigned here, once: this runs for every request.
        collection = object.__new__(cls)
        collection.tasks = []
        collection.continue_on_error = False
        collection._request = True
        collection._check = check
        collection._sealed = False
        collection._tail = None
        collection._around = None
        collection._runs = all(recorder.run for recorder in recorders) if recorders else True
        return collection

    def attach(self, item: Item, *, stage: int) -> None:
        """Run ``item`` after everything queued, in ``stage`` order (integrations' hook).

        The response's ``background`` uses ``RESPONSE_STAGE``, a decorator ``ROUTE_STAGE``.
        """
        check_item(item)
        if self._check is not None:
            for task in _flatten(item):
                self._check(task)
        with _seal_lock:
            self._refuse_if_sealed()
            if self._tail is None:
                self._tail = []
            self._tail.append((stage, item))
        if recorders:
            _record(item)

    def in_context(self, context: contextvars.Context) -> BackgroundTasks:
        """A copy whose tasks run in ``context`` (a route's fixed tasks, per request)."""
        return BackgroundTasks(
            [item.in_context(context) for item in self.tasks],
            continue_on_error=self.continue_on_error,
        )

    def run(self) -> bool:
        """Run every task under the collection's policy; True when none failed."""
        tasks = self.tasks
        stop_on_error = not self.continue_on_error
        failed = False
        i = 0
        while True:
            if i >= len(tasks):
                if self._request and self._more_after(i):
                    continue
                return not failed
            item = tasks[i]
            i += 1
            if failed and stop_on_error:
                _log_skipped(item)
                continue
            outcome: Outcome
            if isinstance(item, BackgroundTasks):
                outcome = None if item.run() else FAILED
            elif not item.is_async:
                outcome = item.run_logged()
            else:
                i, outcome = _run_async(tasks, i - 1, stop_on_error)
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is FAILED:
                failed = True

    def run_for_request(self) -> None:
        """Run a request's tasks once, unless a ``capture_tasks(run=False)`` suppresses them.

        Never raises an ``Exception``: this runs inside a server's ``close()``.
        """
        if not self._runs:
            self.discard()
            return
        if self.seal_if_empty():
            return
        around = self._around
        if around is None:
            self.run()
            return
        entered = False
        try:
            with around(self):
                entered = True
                self.run()
        except Exception:
            if entered:
                logger.exception("bgtask: leaving the context around the background tasks failed")
            else:
                names = ", ".join(names_of(self.discard()))
                logger.exception(
                    "bgtask: entering the context around the background tasks failed; not run: %s",
                    names,
                )

    def seal_if_empty(self) -> bool:
        """Seal a request's collection that has nothing to run; True if it was sealed.

        Nothing queued is the common case: the WSGI layer then skips the run entirely.
        """
        if self.tasks or self._tail:
            return False
        with _seal_lock:
            if self.tasks or self._tail:
                return False
            self._sealed = True
            return True

    def run_inside(self, around: Around) -> None:
        """Run this request's tasks inside ``around(self)`` (an integration's hook).

        The Flask integration uses it to push a fresh app context around the tasks.
        """
        self._around = around

    def rebase(
        self, base: contextvars.Context, exclude: Container[contextvars.ContextVar[Any]]
    ) -> None:
        """Make each pending task run in a copy of ``base`` plus the variables it captured.

        Variables in ``exclude`` are not carried over: the Flask integration drops Flask's
        own request and app context variables this way, so a task sees the fresh app
        context pushed around it and no stale request.
        """
        with _seal_lock:
            self.tasks[:] = [_rebased(item, base, exclude) for item in self.tasks]
            if self._tail:
                self._tail = [(stage, _rebased(item, base, exclude)) for stage, item in self._tail]

    def discard(self, *, seal: bool = True) -> list[Item]:
        """Drop everything pending and return it; sealed, nothing more can be queued.

        With ``seal=False`` the collection stays open: an error handler that runs after a
        failed view may still queue tasks of its own.
        """
        with _seal_lock:
            self._sealed = self._sealed or seal
            items = self.tasks + [item for _, item in sorted(self._tail or (), key=_stage)]
            self.tasks.clear()
            self._tail = None
        return items

    def detach(self) -> BackgroundTasks:
        """Seal this request's collection and move what it would run into a new one.

        For a backend that hands the tasks to another process (RQ, Celery): the new
        collection holds every pending item in run order (the response's and the route's
        after the queued ones), the error policy and the context to run inside, so it can
        still run here if the hand-off fails. It is empty under ``capture_tasks(run=False)``.
        Queueing more onto this collection then raises ``RuntimeError``, as after a run.
        """
        runs = self._runs
        items = self.discard()
        batch = BackgroundTasks(continue_on_error=self.continue_on_error)
        if runs:
            batch.tasks = items
        batch._request = True
        batch._around = self._around
        return batch

    def is_empty(self) -> bool:
        """Whether nothing is queued or attached."""
        return not self.tasks and not self._tail

    def _append_to_request(self, task: BackgroundTask) -> None:
        if self._check is not None:
            self._check(task)
        with _seal_lock:
            self._refuse_if_sealed()
            self.tasks.append(task)
        if recorders:
            _record(task)

    def _refuse_if_sealed(self) -> None:
        if self._sealed:
            msg = (
                "this request's background tasks have already run (or were discarded); "
                "queue tasks before the response is closed"
            )
            raise RuntimeError(msg)

    def _more_after(self, done: int) -> bool:
        """At the end of a request's run: move in the tail, or seal. True if more to run."""
        with _seal_lock:
            if len(self.tasks) > done:
                return True
            tail = self._tail
            if tail:
                self._tail = None
                self.tasks.extend(item for _, item in sorted(tail, key=_stage))
                return True
            self._sealed = True
            return False


class _AsyncRun:
    """Consecutive async tasks of one collection, run in a single hand-off to the loop."""

    __slots__ = ("index", "outcomes", "stop_on_error", "tasks")

    def __init__(self, tasks: list[Item], index: int, stop_on_error: bool) -> None:
        self.tasks = tasks
        self.index = index
        self.stop_on_error = stop_on_error
        self.outcomes: list[Outcome] = []

    def next_step(self) -> _loop.Step | None:
        # Runs in the loop thread, after each task: decide whether the chain goes on.
        outcomes = self.outcomes
        if outcomes:
            last = outcomes[-1]
            if last is not None and (last is not FAILED or self.stop_on_error):
                return None
        tasks, i = self.tasks, self.index
        if i < len(tasks):
            item = tasks[i]
            if type(item) is BackgroundTask and item.is_async:
                self.index = i + 1
                return item.coroutine_logged(outcomes)
        return None


def _run_async(tasks: list[Item], index: int, stop_on_error: bool) -> tuple[int, Outcome]:
    run = _AsyncRun(tasks, index, stop_on_error)
    try:
        _loop.run_chain(run.next_step)
    except Exception:
        # Refused before anything ran (waiting on the loop from inside it): a failure of
        # the task at hand, logged like any other, never raised out of the collection.
        task = tasks[run.index]
        assert isinstance(task, BackgroundTask)
        logger.error("background task %s failed", task.name, exc_info=True)
        return run.index + 1, FAILED
    outcome: Outcome = None
    for result in run.outcomes:
        if result is FAILED:
            outcome = FAILED
        elif result is not None:
            return run.index, result
    return run.index, outcome


def check_item(item: object) -> None:
    if not isinstance(item, (BackgroundTask, BackgroundTasks)):
        msg = (
            f"expected a BackgroundTask or BackgroundTasks, got {type(item).__name__}; "
            "use add_task(func, *args, **kwargs) to queue a plain callable"
        )
        raise TypeError(msg)


def _stage(entry: tuple[int, Item]) -> int:
    return entry[0]


def names_of(items: Iterable[Item]) -> list[str]:
    names: list[str] = []
    for item in items:
        if isinstance(item, BackgroundTask):
            names.append(item.name)
        else:
            names.extend(names_of(item.tasks))
    return names


def _flatten(item: Item) -> Iterator[BackgroundTask]:
    if isinstance(item, BackgroundTask):
        yield item
    else:
        for inner in item.tasks:
            yield from _flatten(inner)


def _rebased(
    item: Item, base: contextvars.Context, exclude: Container[contextvars.ContextVar[Any]]
) -> Item:
    if isinstance(item, BackgroundTasks):
        return BackgroundTasks(
            [_rebased(inner, base, exclude) for inner in item.tasks],
            continue_on_error=item.continue_on_error,
        )
    carried = [(var, value) for var, value in item.context.items() if var not in exclude]
    context = base.copy()
    if carried:
        context.run(_set_all, carried)
    return item.in_context(context)


def _set_all(assignments: list[tuple[contextvars.ContextVar[Any], Any]]) -> None:
    for var, value in assignments:
        var.set(value)


def _name(item: Item) -> str:
    return item.name if isinstance(item, BackgroundTask) else repr(item)


def _log_skipped(item: Item) -> None:
    if isinstance(item, BackgroundTask):
        logger.warning(
            "background task %s skipped: an earlier task of its collection failed", item.name
        )
    else:
        for inner in item.tasks:
            _log_skipped(inner)


def _record(item: Item) -> None:
    if isinstance(item, BackgroundTasks):
        for inner in item.tasks:
            _record(inner)
        return
    for recorder in list(recorders):
        recorder.record(item)
