"""Running a collection: the error policy, once, for sync and async tasks.

A :class:`Run` is one execution of a collection. It decides which task runs next (in the
order added, tasks added meanwhile included, nested collections under their own policy)
and what each outcome means (a failure skips the rest unless ``continue_on_error``); every
transition goes through ``_lifecycle``. :func:`run_here` drives a run from the calling
thread: sync tasks there, consecutive async tasks on the private loop in one hand-off. This
is the only module that talks to the loop.

A task's scope (``Run.scope``, an integration's hook such as Flask's app context) is a
function from the task to a context manager that gives the ``contextvars.Context`` the task
runs in; without one, a task runs in a copy of the context captured when it was queued.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from . import _lifecycle, _loop
from ._collection import BackgroundTasks, install_collection_runner, tasks_of
from ._native import native
from ._stepping import Stepped, stepped
from ._stopping import is_stop_request
from ._task import BackgroundTask, install_direct_runner

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Coroutine
    from contextlib import AbstractContextManager

    from ._collection import Item
    from ._events import Mode

__all__ = ["Run", "Scope", "run_here"]

#: Given a task, a context manager whose value is the context to run it in.
Scope: TypeAlias = "Callable[[BackgroundTask], AbstractContextManager[contextvars.Context]]"


class _NotStarted:
    """The outcome of a task that never started (it was cut first)."""


_NOT_STARTED: Final = _NotStarted()
#: What running one task came to: None (it returned), its error, or _NOT_STARTED.
_Outcome: TypeAlias = "BaseException | _NotStarted | None"


class _Frame:
    """A collection being run: where it is, and whether one of its tasks failed."""

    __slots__ = ("collection", "failed", "position")

    def __init__(self, collection: BackgroundTasks) -> None:
        self.collection = collection
        self.position = 0
        self.failed = False


class Run:
    """One execution of ``collection`` under its error policy, in ``mode``."""

    __slots__ = ("_cut", "_frames", "_lock", "collection", "mode", "scope")

    def __init__(
        self, collection: BackgroundTasks, mode: Mode = "inline", scope: Scope | None = None
    ) -> None:
        self.collection = collection
        self.mode: Mode = mode
        self.scope = scope
        self._frames = [_Frame(collection)]
        self._cut: str | None = None
        # Native: next() runs on pool and loop threads, cut() on the exiting one.
        self._lock: Any = native("_thread", "allocate_lock")()

    @property
    def failed(self) -> bool:
        """Whether a task of the collection (or of one nested in it) failed so far."""
        return bool(self._frames) and self._frames[0].failed

    def next(self) -> BackgroundTask | None:
        """The next task to run, skipping (and announcing) what the policy skips; None at
        the end, or once the run was cut."""
        with self._lock:
            frames = self._frames
            while frames and self._cut is None:
                frame = frames[-1]
                item = frame.collection._item(frame.position)
                if item is None:
                    frames.pop()
                    if frame.failed and frames:
                        frames[-1].failed = True  # a nested collection's failure counts once
                    continue
                frame.position += 1
                if frame.failed and not frame.collection.continue_on_error:
                    for task in tasks_of((item,)):
                        _lifecycle.skipped(task, self.collection, self.mode)
                    continue
                if isinstance(item, BackgroundTasks):
                    frames.append(_Frame(item))
                    continue
                return item
            return None

    def start(self, task: BackgroundTask) -> bool:
        """``task`` starts; False when the run was cut meanwhile (it must not run)."""
        return self._cut is None and _lifecycle.started(task, self.collection, self.mode)

    def end(self, task: BackgroundTask, error: BaseException | None) -> None:
        """``task`` returned, or raised ``error`` (a failure for the policy)."""
        if error is not None and self._frames:
            self._frames[-1].failed = True
        _lifecycle.ended(task, self.collection, self.mode, error)

    def cut(self, reason: str) -> None:
        """A deadline passed: name the task running and those not started; start no more."""
        with self._lock:
            if self._cut is not None:
                return
            self._cut = reason
            left: list[Item] = []
            for frame in self._frames:
                left[:0] = frame.collection._items_from(frame.position)
            running = [
                task for task in tasks_of(self.collection._items_from(0)) if task.state == "running"
            ]
        for task in running:
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} while it ran")
        for task in tasks_of(left):
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} before it started")


def run_here(run: Run) -> None:
    """Drive ``run`` from this thread until it ends.

    Raises only what tells the process to stop (see ``_stopping``), after cutting the rest.
    """
    task = run.next()
    while task is not None:
        if task.is_async:
            first = task
            try:
                task = _loop.run(_async_chain(run, first), first.name, names_its_tasks=True)
            except RuntimeError as exc:
                # Refused before anything ran (waiting on the loop from inside it): a
                # failure of the task at hand, logged like any other.
                first.context.run(run.end, first, exc)
                task = run.next()
        else:
            _run_sync(run, task)
            task = run.next()


def _run_sync(run: Run, task: BackgroundTask) -> None:
    context: contextvars.Context | None = None
    outcome: _Outcome
    if run.scope is None:
        context = task.context.copy()
        outcome = _call(run, task, context)
    else:
        try:
            with run.scope(task) as context:
                outcome = _call(run, task, context)
        except Exception as exc:  # entering or leaving the task's scope failed
            outcome = exc
    if not isinstance(outcome, _NotStarted):
        if context is None:
            context = task.context.copy()
        context.run(run.end, task, outcome)


def _call(run: Run, task: BackgroundTask, context: contextvars.Context) -> _Outcome:
    """Start and call a sync task in ``context``: its error, None, or ``_NOT_STARTED``."""
    if not context.run(run.start, task):
        return _NOT_STARTED
    try:
        result = context.run(task.func, *task.args, **task.kwargs)
        if inspect.iscoroutine(result):
            # A sync wrapper around a coroutine function (a decorator that lost the async
            # marker): the work is the coroutine, so run it.
            _await_here(result, task.name, context)
    except BaseException as exc:
        if is_stop_request(exc):
            run.cut(f"the process is stopping ({type(exc).__name__})")
            raise
        return exc
    return None


async def _async_chain(run: Run, task: BackgroundTask | None) -> BackgroundTask | None:
    """Run ``task`` and the async tasks after it; return the first sync one (or None)."""
    while task is not None and task.is_async:
        await _run_async(run, task)
        task = run.next()
    return task


async def _run_async(run: Run, task: BackgroundTask) -> None:
    context: contextvars.Context | None = None
    outcome: _Outcome
    if run.scope is None:
        context = task.context.copy()
        outcome = await Stepped(_attempt(run, task), context, task.name)
    else:
        try:
            with run.scope(task) as context:
                outcome = await Stepped(_attempt(run, task), context, task.name)
        except Exception as exc:  # entering or leaving the task's scope failed
            outcome = exc
    if not isinstance(outcome, _NotStarted):
        if context is None:
            context = task.context.copy()
        context.run(run.end, task, outcome)


async def _attempt(run: Run, task: BackgroundTask) -> _Outcome:
    """Start and await an async task (in its context): its error, None, or _NOT_STARTED."""
    if not run.start(task):
        return _NOT_STARTED
    try:
        await task.func(*task.args, **task.kwargs)  # type: ignore[misc]
    except asyncio.CancelledError as exc:
        reason = _loop.cutting()
        if reason is None:
            return exc  # cancelled by its own code: a failure of the task
        run.cut(reason)
        return _NOT_STARTED  # cut: the run names it
    except BaseException as exc:
        # Signal handlers run in the main thread, never on the loop's: whatever else an
        # async task raises (KeyboardInterrupt, SystemExit...) is a failure of that task.
        return exc
    return None


def _run_directly(task: BackgroundTask) -> None:
    """``task()``: run now, in a copy of its context; its exceptions propagate."""
    context = task.context.copy()
    if task.is_async:
        _loop.refuse_inside()  # before the coroutine exists: no "never awaited" warning
        coroutine: Coroutine[Any, Any, Any] = task.func(*task.args, **task.kwargs)  # type: ignore[assignment]
        _loop.run(stepped(coroutine, task.name, context), task.name)
        return
    result = context.run(task.func, *task.args, **task.kwargs)
    if inspect.iscoroutine(result):
        _await_here(result, task.name, context)


def _await_here(
    coroutine: Coroutine[Any, Any, Any], name: str, context: contextvars.Context
) -> None:
    try:
        _loop.run(stepped(coroutine, name, context), name)
    finally:
        coroutine.close()  # a no-op once it ran; refused, no "never awaited" warning


def _run_collection(collection: BackgroundTasks) -> None:
    run_here(Run(collection))


install_direct_runner(_run_directly)
install_collection_runner(_run_collection)
