"""Driving a run: sync tasks in the calling thread, async ones on the private loop.

:func:`run_here` drives a :class:`~bgtask._policy.Run` from the calling thread: sync tasks
there, consecutive async tasks on the private loop in one hand-off. :func:`run_sync` and
:func:`async_chain` are its two halves, which ``_relay`` drives from two sides (the pool's
threads and the loop) without a thread waiting on the other. It also installs how calling
a task or a collection runs it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from . import _loop
from ._collection import BackgroundTasks, install_collection_runner
from ._control import retry_elsewhere, watch_overdue, with_deadline
from ._group import run_group
from ._groups import Group
from ._policy import Run
from ._stepping import Stepped, stepped
from ._stopping import is_stop_request
from ._task import BackgroundTask, install_direct_runner

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Coroutine

    from ._collection import Item

__all__ = [
    "Run",
    "async_chain",
    "continue_here",
    "run_here",
    "run_sync",
]


class _NotStarted:
    """The outcome of a task that never started (it was cut first)."""


_NOT_STARTED: Final = _NotStarted()
#: What running one task came to: None (it returned), its error, or _NOT_STARTED.
_Outcome: TypeAlias = "BaseException | _NotStarted | None"


def run_here(run: Run) -> None:
    """Drive ``run`` from this thread until it ends.

    Raises only what tells the process to stop (see ``_stopping``), after cutting the rest.
    """
    continue_here(run, run.next())


def continue_here(run: Run, task: Item | None) -> None:
    """Drive ``run`` from this thread, starting with ``task`` (what ``run.next()`` gave)."""
    while task is not None:
        if isinstance(task, BackgroundTask) and task.is_async:
            first = task
            try:
                task = _loop.run(async_chain(run, first), first.name, names_its_tasks=True)
            except RuntimeError as exc:
                # Refused before anything ran (waiting on the loop from inside it): a
                # failure of the task at hand, logged like any other.
                _end(run, first, exc, None)
                task = run.next()
        elif run_sync(run, task):
            return  # a retry took the rest of the run elsewhere
        else:
            task = run.next()


def _end(
    run: Run, task: BackgroundTask, outcome: _Outcome, context: contextvars.Context | None
) -> float | None:
    """End ``task`` with ``outcome``; the seconds before its retry, or None (see Run.end)."""
    # In the task's context, so a log filter reading a request id sees it on the line.
    if isinstance(outcome, _NotStarted):
        return None
    return (context or task.context.copy()).run(run.end, task, outcome)


def run_sync(run: Run, task: Item) -> bool:
    """Run the sync ``task`` of ``run`` here, retries included: start, call (in its scope),
    end (a group: all its tasks, at the same time). True when a retry that waits took the
    rest of the run elsewhere: stop driving it."""
    if not isinstance(task, BackgroundTask):
        assert isinstance(task, Group), "a run gives groups, never plain collections"
        run_group(run, task, _sync_in_place, _async_in_place)
        return False
    while True:
        delay = _run_sync_once(run, task)
        if delay is None:
            return False
        if delay and retry_elsewhere(run, task, delay):
            return True
        if delay:
            time.sleep(delay)  # a direct call or an engine's worker: the caller's own thread


def _sync_in_place(run: Run, task: BackgroundTask) -> None:
    """A sync task of a group: its retries wait in this thread, inside the group."""
    while (delay := _run_sync_once(run, task)) is not None:
        time.sleep(delay)


async def _async_in_place(run: Run, task: BackgroundTask) -> None:
    """An async task of a group: its retries wait on the loop, inside the group."""
    while (delay := await _run_async_once(run, task)) is not None:  # noqa: ASYNC110 (a backoff)
        await asyncio.sleep(delay)


def _run_sync_once(run: Run, task: BackgroundTask) -> float | None:
    if run.scope is None:
        # The common case in one pass through the task's context: start, call, end.
        own = task.context.copy()
        outcome = own.run(_start_call_end, run, task)
        if isinstance(outcome, float) or outcome is None:
            return outcome
        return _end(run, task, _awaited(run, outcome, task, own), own)
    context: contextvars.Context | None = None
    result: _Outcome
    try:
        with run.scope(task) as context:
            result = _start_and_call(run, task, context)
    except Exception as exc:  # entering or leaving the task's scope failed
        result = exc
    return _end(run, task, result, context)


def _start_call_end(run: Run, task: BackgroundTask) -> Coroutine[Any, Any, Any] | float | None:
    """In the task's context: start, call and end a sync task; the seconds before its retry
    or None. A coroutine it returned is handed back (it must be awaited on the loop,
    outside this context), not ended yet."""
    if not _start_sync(run, task):
        return None
    error: BaseException | None = None
    try:
        result = task.func(*task.args, **task.kwargs)
        if inspect.iscoroutine(result):
            return result
    except BaseException as exc:
        _stop_if_asked(run, exc)
        error = exc
    return run.end(task, error)


def _start_sync(run: Run, task: BackgroundTask) -> bool:
    if not run.start(task):
        return False
    timeout = run.timeout_of(task)
    if timeout is not None:
        watch_overdue(run, task, timeout)
    return True


def _start_and_call(run: Run, task: BackgroundTask, context: contextvars.Context) -> _Outcome:
    """Start and call a sync task in ``context``: its error, None, or ``_NOT_STARTED``."""
    if not context.run(_start_sync, run, task):
        return _NOT_STARTED
    try:
        result = context.run(task.func, *task.args, **task.kwargs)
    except BaseException as exc:
        _stop_if_asked(run, exc)
        return exc
    if inspect.iscoroutine(result):
        return _awaited(run, result, task, context)
    return None


def _awaited(
    run: Run,
    coroutine: Coroutine[Any, Any, Any],
    task: BackgroundTask,
    context: contextvars.Context,
) -> BaseException | None:
    """Await what a sync task returned (a sync wrapper around a coroutine function, a
    decorator that lost the async marker: the work is the coroutine). Its error, or None."""
    try:
        _await_here(coroutine, task.name, context)
    except BaseException as exc:
        _stop_if_asked(run, exc)
        return exc
    return None


def _stop_if_asked(run: Run, error: BaseException) -> None:
    if is_stop_request(error):
        run.cut(f"the process is stopping ({type(error).__name__})")
        raise error


async def async_chain(run: Run, task: Item | None) -> Item | None:
    """On the loop: run ``task`` and the async tasks after it; return the first sync one
    (or None at the end, or once a retry took the rest of the run elsewhere)."""
    while isinstance(task, BackgroundTask) and task.is_async:
        if await _run_async(run, task):
            return None
        task = run.next()
    return task


async def _run_async(run: Run, task: BackgroundTask) -> bool:
    """Run the async ``task``, retries included; True when a retry that waits took the
    rest of the run elsewhere."""
    while True:
        delay = await _run_async_once(run, task)
        if delay is None:
            return False
        if delay and retry_elsewhere(run, task, delay):
            return True
        if delay:
            await asyncio.sleep(delay)


async def _run_async_once(run: Run, task: BackgroundTask) -> float | None:
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
    return _end(run, task, outcome, context)


async def _attempt(run: Run, task: BackgroundTask) -> _Outcome:
    """Start and await an async task (in its context): its error, None, or _NOT_STARTED."""
    if not run.start(task):
        return _NOT_STARTED
    timeout = run.timeout_of(task)
    try:
        if timeout is None:
            await task.func(*task.args, **task.kwargs)  # type: ignore[misc]
        else:
            return await with_deadline(task, timeout)
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
