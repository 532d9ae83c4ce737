"""Whether a worker process can import a task's function by name, and importing it there.

RQ and Celery workers do not receive functions, only names: ``module:qualname``. A
function qualifies when importing that name gives back the very same object, so lambdas,
functions defined inside functions, methods bound to objects, and anything defined in
``__main__`` do not.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["import_problem", "reference", "resolve", "unwrap"]


def unwrap(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]:
    """See through ``functools.partial``: the worker imports the function it wraps."""
    while isinstance(func, functools.partial):
        args = func.args + args
        kwargs = {**func.keywords, **kwargs}
        func = func.func
    return func, args, kwargs


def import_problem(func: object) -> str | None:
    """Why a worker could not import ``func`` by its module and qualified name, or None.

    >>> import_problem(functools.partial) is None
    True
    >>> import_problem(lambda: None)
    'a lambda has no name a worker can import; define a module-level function'
    """
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(owner, type | types.ModuleType):
        return (
            "it is a method bound to an object, and a worker imports functions by name, "
            "not objects; queue a module-level function and pass it what it needs (an id)"
        )
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return (
            f"an object of type {type(func).__name__} has no name a worker can import; "
            "queue a module-level function (def) instead"
        )
    if "<lambda>" in qualname:
        return "a lambda has no name a worker can import; define a module-level function"
    if "<locals>" in qualname:
        return (
            "it is defined inside a function, so a worker cannot import it; "
            "define it at module level"
        )
    if module == "__main__":
        return (
            "it is defined in __main__ (the script being run), which is another module in a "
            "worker; move it into an importable module"
        )
    try:
        found = resolve(f"{module}:{qualname}")
    except Exception:
        return f"importing {module}.{qualname} fails here, so it would fail in a worker too"
    if found is func or (
        inspect.ismethod(found)
        and inspect.ismethod(func)
        and found.__func__ is func.__func__
        and found.__self__ is func.__self__
    ):
        return None
    return (
        f"importing {module}.{qualname} gives another object (a decorator that did not keep "
        "the function, or a name bound twice); queue the object that name refers to"
    )


def reference(func: Callable[..., object]) -> str:
    """``func``'s import path, ``module:qualname``; check it with :func:`import_problem`.

    >>> reference(functools.partial)
    'functools:partial'
    """
    return f"{func.__module__}:{func.__qualname__}"


def resolve(path: str) -> Any:
    """The object at ``path`` (``module:qualname``), imported.

    >>> resolve("functools:partial") is functools.partial
    True
    """
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target
