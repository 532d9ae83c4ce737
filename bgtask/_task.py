"""One background task: a callable and its arguments, checked and bound when queued."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from typing import TYPE_CHECKING, Any, Final, ParamSpec

from . import _loop
from ._arguments import check_arguments
from ._callables import describe, is_async_callable
from ._stopping import is_stop_request

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FAILED", "BackgroundTask", "Outcome"]

P = ParamSpec("P")

logger: Final = logging.getLogger("bgtask")


class _Failed:
    """The outcome of a task that raised an ``Exception`` (already logged)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = _Failed()
#: None when the task finished, FAILED when it raised (logged), or a BaseException that
#: tells the process to stop (see ``_stopping``), for the caller to re-raise.
Outcome = _Failed | BaseException | None


class BackgroundTask:
    """A function and its arguments, to run after the response has been sent.

    ``func`` may be a plain function, an ``async def`` coroutine function, a
    ``functools.partial`` of either, or an object whose ``__call__`` is either. Whether it
    is async is decided here, once. The arguments are checked against ``func``'s signature
    now, so a mistake raises ``TypeError`` in the request that made it, and the current
    ``contextvars`` context is captured: the task runs in a copy of it.

    Calling the task runs it and returns when it has finished: a sync function directly, an
    async one on bgtask's private event loop. Exceptions propagate from a direct call; a
    :class:`BackgroundTasks` collection catches and logs them instead.

    >>> def send_email(to: str, subject: str = "") -> None: ...
    >>> task = BackgroundTask(send_email, "user@example.com", subject="Welcome")
    >>> task
    <BackgroundTask bgtask._task.send_email>
    >>> task()
    """

    __slots__ = ("_name", "args", "context", "func", "is_async", "kwargs")

    def __init__(self, func: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        if not callable(func):
            # The type only: a misplaced argument value must not reach an error log.
            msg = f"a background task needs a callable, got an object of type {type(func).__name__}"
            raise TypeError(msg)
        problem = check_arguments(func, args, kwargs)
        if problem is not None:
            msg = f"cannot queue {describe(func)}: {problem}"
            raise TypeError(msg)
        self.func: Callable[..., object] = func
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.is_async: bool = is_async_callable(func)
        self.context: contextvars.Context = contextvars.copy_context()
        self._name: str | None = None

    @property
    def name(self) -> str:
        """The function's qualified name, as it appears in logs (never argument values)."""
        name = self._name
        if name is None:
            name = self._name = describe(self.func)
        return name

    def __repr__(self) -> str:
        return f"<BackgroundTask {self.name}>"

    def __call__(self) -> None:
        context = self.context.copy()
        if self.is_async:
            _wait_for(self.func(*self.args, **self.kwargs), context, self.name)
            return
        result = context.run(self.func, *self.args, **self.kwargs)
        if inspect.iscoroutine(result):
            _wait_for(result, context, self.name)

    def in_context(self, context: contextvars.Context) -> BackgroundTask:
        """This task, to run in ``context`` instead of the one captured when it was built."""
        clone = object.__new__(BackgroundTask)
        clone.func, clone.args, clone.kwargs = self.func, self.args, self.kwargs
        clone.is_async, clone._name = self.is_async, self._name
        clone.context = context
        return clone

    def run_logged(self) -> Outcome:
        """Run a sync task in its context; log instead of raising ``Exception``."""
        context = self.context.copy()
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("background task %s started", self.name)
            started = time.perf_counter()
        try:
            result = context.run(self.func, *self.args, **self.kwargs)
            if inspect.iscoroutine(result):
                # A sync wrapper around a coroutine function (a decorator that lost the
                # async marker): the work is the coroutine, so run it.
                _wait_for(result, context, self.name)
        except Exception:
            context.run(_log_failure, self)
            return FAILED
        except BaseException as exc:
            if is_stop_request(exc):
                return exc  # the process is being told to stop: the caller re-raises it
            # The task's own KeyboardInterrupt, SystemExit, CancelledError of an awaited
            # coroutine, gevent.Timeout...: a failure of this task (see _stopping).
            context.run(_log_failure, self)
            return FAILED
        if debug:
            _log_finished(self, started)
        return None

    def coroutine_logged(self, outcomes: list[Outcome]) -> _loop.Step:
        """A step for the loop that runs this async task and appends its outcome."""
        return (_logged(self, outcomes), self.context.copy(), self.name)


def _log_failure(task: BackgroundTask) -> None:
    logger.error("background task %s failed", task.name, exc_info=True)


def _log_finished(task: BackgroundTask, started: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.debug("background task %s finished in %.3f ms", task.name, elapsed_ms)


async def _logged(task: BackgroundTask, outcomes: list[Outcome]) -> None:
    debug = logger.isEnabledFor(logging.DEBUG)
    if debug:
        logger.debug("background task %s started", task.name)
        started = time.perf_counter()
    try:
        await task.func(*task.args, **task.kwargs)  # type: ignore[misc]
    except Exception:
        _log_failure(task)
        outcomes.append(FAILED)
        return
    except asyncio.CancelledError:
        # Cut at the exit deadline, or cancelled by its own code: a failure either way.
        logger.error("background task %s was cancelled", task.name)
        outcomes.append(FAILED)
        return
    except BaseException:
        # Signal handlers run in the main thread, never on the loop's: whatever else an
        # async task raises (KeyboardInterrupt, SystemExit...) is a failure of that task.
        _log_failure(task)
        outcomes.append(FAILED)
        return
    if debug:
        _log_finished(task, started)
    outcomes.append(None)


def _wait_for(coroutine: Any, context: contextvars.Context, name: str) -> None:
    """Run one coroutine on the private loop, in ``context``; re-raise what it raised."""
    raised: list[BaseException] = []

    async def run() -> None:
        try:
            await coroutine
        except BaseException as exc:
            raised.append(exc)

    step: list[_loop.Step] = [(run(), context, name)]
    try:
        _loop.run_chain(lambda: step.pop() if step else None)
    finally:
        if step:  # never handed to the loop (refused inside it): no "never awaited" warning
            step[0][0].close()
            coroutine.close()
    if raised:
        raise raised[0]
