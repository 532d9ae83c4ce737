"""Checks, when a task is queued, that its arguments can bind to its function.

A mistake such as ``add_task(send_email)`` without the address must fail in the request
that made it, not later in a log line. ``inspect.Signature.bind`` is exact but costs a few
microseconds per call; plain Python functions, which are nearly every task, are checked
here from their code object instead, with the per-code facts computed once and cached.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["check_arguments"]

_VARARGS: Final = inspect.CO_VARARGS
_VARKEYWORDS: Final = inspect.CO_VARKEYWORDS


class _CodeShape:
    """The parameter layout of one code object."""

    __slots__ = (
        "has_varargs",
        "has_varkeywords",
        "index",
        "keyword_only",
        "names",
        "positional_count",
        "positional_only_count",
    )

    def __init__(self, code: types.CodeType) -> None:
        positional = code.co_argcount
        keyword_only = code.co_kwonlyargcount
        self.names: tuple[str, ...] = code.co_varnames[: positional + keyword_only]
        self.positional_count = positional
        self.positional_only_count = code.co_posonlyargcount
        self.keyword_only = self.names[positional:]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.has_varargs = bool(code.co_flags & _VARARGS)
        self.has_varkeywords = bool(code.co_flags & _VARKEYWORDS)


# Keyed by code object, not function: closures made per request share one code object,
# so this grows with the program's size, never with traffic.
_shapes: dict[types.CodeType, _CodeShape] = {}


def _shape(code: types.CodeType) -> _CodeShape:
    shape = _shapes.get(code)
    if shape is None:
        shape = _shapes[code] = _CodeShape(code)
    return shape


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _check_function(
    func: types.FunctionType, bound: int, positional: int, keywords: Mapping[str, object]
) -> str | None:
    """Why ``func`` cannot take these arguments, or None when it can.

    ``bound`` positional arguments are already bound (``self`` of a method).
    """
    shape = _shape(func.__code__)
    given = bound + positional
    if given > shape.positional_count and not shape.has_varargs:
        takes = shape.positional_count - bound
        return f"takes {_plural(takes, 'positional argument')} but {positional} were given"
    for name in keywords:
        i = shape.index.get(name)
        if i is None or i < shape.positional_only_count:
            if not shape.has_varkeywords:
                if i is None:
                    return f"got an unexpected keyword argument {name!r}"
                return f"got positional-only argument {name!r} passed as keyword"
        elif i < given and i < shape.positional_count:
            return f"got multiple values for argument {name!r}"
    defaults = func.__defaults__
    required = shape.positional_count - (len(defaults) if defaults else 0)
    for i in range(given, required):
        name = shape.names[i]
        if i < shape.positional_only_count or name not in keywords:
            return f"missing a required argument: {name!r}"
    if shape.keyword_only:
        keyword_defaults = func.__kwdefaults__ or {}
        for name in shape.keyword_only:
            if name not in keywords and name not in keyword_defaults:
                return f"missing a required keyword-only argument: {name!r}"
    return None


def _check_with_signature(
    func: Callable[..., Any], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> str | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None  # Some builtins have no readable signature: nothing to check.
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def check_arguments(
    func: Callable[..., Any], args: tuple[object, ...], kwargs: dict[str, object]
) -> str | None:
    """Why ``func(*args, **kwargs)`` would fail to bind, or None when it would bind.

    >>> def send(to: str) -> None: ...
    >>> check_arguments(send, (), {})
    "missing a required argument: 'to'"
    """
    bound = 0
    target: Any = func
    while True:
        kind = type(target)
        if kind is types.FunctionType:
            return _check_function(target, bound, len(args), kwargs)
        if kind is types.MethodType and type(target.__func__) is types.FunctionType:
            bound += 1
            target = target.__func__
        elif isinstance(target, functools.partial):
            args = target.args + args
            kwargs = {**target.keywords, **kwargs}
            target = target.func
        elif bound == 0 and not isinstance(target, type):
            call = inspect.getattr_static(kind, "__call__", None)
            if type(call) is types.FunctionType:
                return _check_function(call, 1, len(args), kwargs)
            if isinstance(call, staticmethod) and type(call.__func__) is types.FunctionType:
                return _check_function(call.__func__, 0, len(args), kwargs)
            return _check_with_signature(target, args, kwargs)
        else:
            return _check_with_signature(target, args, kwargs)
