"""What bgtask needs to know about a task's callable: its name, and whether it is async.

Both questions are answered once, when the task is built, never per run.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["describe", "is_async_callable"]


def is_async_callable(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` returns a coroutine to await.

    Sees through ``functools.partial`` and objects whose ``__call__`` is ``async def``.

    >>> async def ping() -> None: ...
    >>> is_async_callable(functools.partial(ping))
    True
    """
    if type(func) is types.FunctionType:
        # The common case, answered from the code flags without inspect's generic walk;
        # 3.12's inspect.markcoroutinefunction leaves a marker attribute instead.
        return bool(func.__code__.co_flags & inspect.CO_COROUTINE) or hasattr(
            func, "_is_coroutine_marker"
        )
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    if isinstance(func, type):
        return False
    # The class's __call__, not the instance's: that is what calling the object runs.
    return inspect.iscoroutinefunction(getattr(type(func), "__call__", None))  # noqa: B004


def describe(func: Callable[..., Any]) -> str:
    """A readable name for ``func`` that never includes argument values.

    Used in logs, reprs and error messages, which must not leak emails or tokens.

    >>> describe(functools.partial(print, "secret"))
    'functools.partial(builtins.print)'
    """
    if type(func) is types.FunctionType:  # nearly every task: no inspect walk
        return f"{func.__module__}.{func.__qualname__}" if func.__module__ else func.__qualname__
    if isinstance(func, functools.partial):
        return f"functools.partial({describe(func.func)})"
    target: Any = func
    if inspect.ismethod(target):
        target = target.__func__
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(qualname, str):
        # An instance of a class with __call__: name its class.
        cls = type(func)
        return f"{cls.__module__}.{cls.__qualname__} instance"
    module = getattr(target, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
