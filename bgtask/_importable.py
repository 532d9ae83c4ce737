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

__all__ = ["import_problem", "is_reference", "reference", "resolve", "same_callable", "unwrap"]


def unwrap(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]:
    """See through ``functools.partial``: the worker imports the function it wraps."""
    while isinstance(func, functools.partial):
        args = func.args + args
        kwargs = {**func.keywords, **kwargs}
        func = func.func
    return func, args, kwargs


def import_problem(func: object, *, bound: bool = True) -> str | None:
    """Why a worker could not import ``func`` by its module and qualified name, or None.

    ``bound=False`` skips importing the name, for a decorator: while it runs, the module
    has not bound the name yet.

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
        return _local_problem(func, qualname)
    if module == "__main__":
        return (
            "it is defined in __main__ (the script being run), which is another module in a "
            "worker; move it into an importable module"
        )
    if not bound:
        return None
    try:
        found = resolve(f"{module}:{qualname}")
    except Exception:
        return f"importing {module}.{qualname} fails here, so it would fail in a worker too"
    if same_callable(found, func):
        return None
    return (
        f"importing {module}.{qualname} gives another object (a decorator that did not keep "
        "the function, or a name bound twice); queue the object that name refers to"
    )


def _local_problem(func: object, qualname: str) -> str:
    problem = (
        f"it is defined inside a function ({qualname}), so a worker cannot import it; "
        "define it at module level"
    )
    # A decorator's wrapper closes over the function it wraps: its name hides that one's.
    closure = getattr(func, "__closure__", None) or ()
    wrapped = [cell.cell_contents for cell in closure if _holds_function(cell)]
    if wrapped:
        name = getattr(wrapped[0], "__qualname__", "the function")
        problem += (
            f". If it is a decorator's wrapper (it wraps {name}), the decorator hides the "
            "decorated function's name: decorate the wrapper with @functools.wraps(func)"
        )
    return problem


def _holds_function(cell: Any) -> bool:
    try:
        return callable(cell.cell_contents)
    except ValueError:  # an empty cell
        return False


def same_callable(found: object, func: object) -> bool:
    """Whether ``found`` is ``func``: the same object, or the same method of the same class
    (each ``Class.method`` lookup of a classmethod builds a new bound method)."""
    return found is func or (
        inspect.ismethod(found)
        and inspect.ismethod(func)
        and found.__func__ is func.__func__
        and found.__self__ is func.__self__
    )


def reference(func: Callable[..., object]) -> str:
    """``func``'s import path, ``module:qualname``; check it with :func:`import_problem`.

    >>> reference(functools.partial)
    'functools:partial'
    """
    return f"{func.__module__}:{func.__qualname__}"


def is_reference(text: object) -> bool:
    """Whether ``text`` is a well-formed ``module:qualname`` (dotted identifiers only), so
    checking it needs no import and logging it cannot forge a line.

    >>> is_reference("yourapp.tasks:send_email"), is_reference("os:system\\nERROR forged")
    (True, False)
    """
    if not isinstance(text, str) or text.count(":") != 1 or len(text) > 1000:
        return False
    module, _, qualname = text.partition(":")
    return all(part.isidentifier() for part in (*module.split("."), *qualname.split(".")))


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
