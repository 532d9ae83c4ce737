"""A job's tasks on the worker, under their own names: recording success, or refusing.

A retried job skips the tasks that already succeeded, so each task records its success
(its index in the job) the moment it finishes; one that cannot run on this worker (its
arguments do not bind, its module does not import) fails under its own name instead.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

from ._callables import is_async_callable
from ._options import ATTRIBUTE, options_of

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["recording", "refusing"]


def recording(
    func: Callable[..., Any],
    index: int,
    done: set[int],
    on_progress: Callable[[], None] | None,
) -> Callable[..., Any]:
    """``func``, under its own name, adding ``index`` to ``done`` once it succeeded.

    >>> done = set()
    >>> recording(print, 3, done, None)("ran")
    ran
    >>> done
    {3}
    """

    def succeeded() -> None:
        done.add(index)
        if on_progress is not None:
            on_progress()

    async def after(coroutine: Any) -> None:
        await coroutine
        succeeded()

    wrapper: Callable[..., Any]
    if is_async_callable(func):

        async def run_async(*args: Any, **kwargs: Any) -> None:
            await func(*args, **kwargs)
            succeeded()

        wrapper = run_async
    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if inspect.iscoroutine(result):
                return after(result)  # a sync wrapper of a coroutine function: await it
            succeeded()
            return result

        wrapper = run
    options = options_of(func)
    if options is not None:  # its deadline and retries apply on the worker too
        setattr(wrapper, ATTRIBUTE, options)
    # Logs name the task's function, not this wrapper.
    return functools.update_wrapper(
        wrapper, func, assigned=("__module__", "__qualname__"), updated=()
    )


def refusing(reference: str, problem: str) -> Callable[..., None]:
    """A stand-in that fails like the task would, under its name, saying why."""

    def refuse(*args: object, **kwargs: object) -> None:
        msg = f"cannot run {reference.replace(':', '.', 1)}: {problem}"
        raise TypeError(msg)

    refuse.__module__, _, refuse.__qualname__ = reference.partition(":")
    return refuse
