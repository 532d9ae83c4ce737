"""A task function's options (a deadline, retries), given once where the function is defined.

``@bgtask.task(timeout=10, retry=RetryPolicy(max=3, backoff=[1, 5, 30]))`` records the
options on the function itself and returns it unchanged: its signature, its name (which
the engines and their allow-lists look up) and its identity stay, mypy still checks the
arguments of every ``add_task`` call, and a task may take ``timeout=`` or ``retry=``
keywords of its own. Every way of queueing the function (``add_task``, ``BackgroundTask``,
``response.background``, ``@background``, the RQ and Celery backends, whose workers run the
declared function object) reads them from it.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from ._retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["JOB_MARGIN", "TaskOptions", "options_of", "task", "time_budget"]

F = TypeVar("F", bound="Callable[..., object]")

#: Where ``@task`` records the options, on the function.
ATTRIBUTE: Final = "__bgtask_options__"
#: Seconds an engine's job limit adds to its tasks' budget (the job's own work around them).
JOB_MARGIN: Final = 5


class TaskOptions:
    """A deadline in seconds (None: none), a retry policy, and what to retry on.

    >>> TaskOptions(timeout=5, retry=RetryPolicy(max=2, backoff=1))
    TaskOptions(timeout=5.0, retry=RetryPolicy(max=2, backoff=1.0), retry_on=(Exception,))
    """

    __slots__ = ("retry", "retry_on", "timeout")

    def __init__(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                msg = f"timeout must be seconds (a number) or None, got {type(timeout).__name__}"
                raise TypeError(msg)
            if not (math.isfinite(timeout) and timeout > 0):
                msg = f"timeout must be more than zero seconds, got {timeout!r}"
                raise ValueError(msg)
        if retry is not None and not isinstance(retry, RetryPolicy):
            msg = f"retry must be a RetryPolicy or None, got {type(retry).__name__}"
            raise TypeError(msg)
        if not (
            isinstance(retry_on, tuple)
            and retry_on
            and all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on)
        ):
            msg = f"retry_on must be a tuple of exception classes, got {retry_on!r}"
            raise TypeError(msg)
        self.timeout = None if timeout is None else float(timeout)
        self.retry = retry
        self.retry_on = retry_on

    def __repr__(self) -> str:
        retry_on = "(" + ", ".join(kind.__name__ for kind in self.retry_on) + ",)"
        return f"TaskOptions(timeout={self.timeout}, retry={self.retry}, retry_on={retry_on})"


@overload
def task(func: F, /) -> F: ...
@overload
def task(
    *,
    timeout: float | None = ...,
    retry: RetryPolicy | None = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> Callable[[F], F]: ...
def task(
    func: F | None = None,
    /,
    *,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
) -> F | Callable[[F], F]:
    """Give a task function a deadline and retries, wherever it is queued from.

    ``timeout``: seconds from the task's start; an async task is cancelled then (it sees
    ``CancelledError`` and may clean up) and counts as failed, "timed out"; a sync task
    cannot be interrupted: it is reported overdue, once, and runs on. ``retry``: a failure
    (an exception of ``retry_on``, a time-out included) is retried up to ``retry.max``
    times after ``retry.backoff``, resuming at that task. Checked now: a bad option raises
    where the function is defined.

    >>> @task(timeout=10, retry=RetryPolicy(max=3, backoff=[1, 5, 30]))
    ... def send_email(to: str) -> None: ...
    >>> BackgroundTask(send_email, "user@example.com").options.timeout
    10.0
    """
    options = TaskOptions(timeout=timeout, retry=retry, retry_on=retry_on)

    def record(function: F) -> F:
        if not callable(function):
            msg = f"@task decorates a function, got {type(function).__name__}"
            raise TypeError(msg)
        try:
            setattr(function, ATTRIBUTE, options)
        except AttributeError:
            msg = (
                f"@task cannot record options on {type(function).__name__} objects: "
                "decorate the function where it is defined"
            )
            raise TypeError(msg) from None
        return function

    return record if func is None else record(func)


def options_of(func: Callable[..., object]) -> TaskOptions | None:
    """The options ``@task`` gave ``func`` (seen through partials and bound methods)."""
    while isinstance(func, functools.partial):
        options: Any = getattr(func, ATTRIBUTE, None)
        if options is not None:
            return options  # type: ignore[no-any-return]
        func = func.func
    found = getattr(func, ATTRIBUTE, None)
    return found if isinstance(found, TaskOptions) else None


def time_budget(funcs: list[Callable[..., object]]) -> float | None:
    """Seconds a job of ``funcs`` may take when each has a deadline: every attempt at its
    deadline and every backoff waited; None when one has no deadline (no bound to give).

    What the RQ and Celery backends give the engine as the job's own time limit, so a sync
    task past its deadline is stopped by the engine, which can (a work horse, a pool child).

    >>> @task(timeout=2, retry=RetryPolicy(max=1, backoff=3))
    ... def send(to: str) -> None: ...
    >>> time_budget([send, send])
    14.0
    """
    total = 0.0
    for func in funcs:
        options = options_of(func)
        if options is None or options.timeout is None:
            return None
        retry = options.retry
        attempts = 1 + (retry.max if retry is not None else 0)
        total += attempts * options.timeout + (sum(retry.delays()) if retry is not None else 0.0)
    return total
