"""Checks, when a task is queued, that its arguments bind to its function.

A mistake such as ``add_task(send_email)`` without the address must fail in the request
that made it, not later in a log line. The check is ``inspect.Signature.bind`` on the
function a call really reaches (a bound method's function with its ``self``, a partial's
function with its arguments, a callable object's ``__call__``), so it agrees with the call
itself. Signatures of plain functions are cached by code object: closures made per request
share one, so the cache grows with the program, never with traffic.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["check_arguments"]

_by_code: dict[types.CodeType, inspect.Signature] = {}
_REQUIRED_KINDS = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


def check_arguments(
    func: Callable[..., Any], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> str | None:
    """Why ``func(*args, **kwargs)`` would fail to bind, or None when it would bind.

    >>> def send(to: str) -> None: ...
    >>> check_arguments(send, (), {})
    "missing a required argument: 'to'"
    >>> check_arguments(functools.partial(send, "a@b.c"), (), {}) is None
    True
    """
    target, args, kwargs = _reached(func, args, kwargs)
    signature = _signature(target)
    if signature is None:
        return None  # some builtins have no readable signature: nothing to check
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    # Python 3.13's bind() accepts f(a=1) for f(a, /, **kwargs), leaving ``a`` unbound;
    # the call itself refuses it.
    for name, parameter in signature.parameters.items():
        if (
            parameter.kind in _REQUIRED_KINDS
            and parameter.default is inspect.Parameter.empty
            and name not in bound.arguments
        ):
            return f"missing a required argument: {name!r}"
    return None


def _reached(
    func: Any, args: tuple[object, ...], kwargs: Mapping[str, object]
) -> tuple[Any, tuple[object, ...], Mapping[str, object]]:
    """The function a call of ``func`` reaches, with the arguments it then receives."""
    while True:
        if isinstance(func, functools.partial):
            func, args, kwargs = func.func, func.args + args, {**func.keywords, **kwargs}
        elif isinstance(func, types.MethodType):
            func, args = func.__func__, (func.__self__, *args)
        elif isinstance(func, (types.FunctionType, type, types.BuiltinFunctionType)):
            return func, args, kwargs
        else:
            call = inspect.getattr_static(type(func), "__call__", None)
            if isinstance(call, staticmethod):
                return call.__func__, args, kwargs
            if isinstance(call, types.FunctionType):
                return call, (func, *args), kwargs
            return func, args, kwargs


def _signature(func: Any) -> inspect.Signature | None:
    code = getattr(func, "__code__", None) if isinstance(func, types.FunctionType) else None
    if code is not None:
        signature = _by_code.get(code)
        if signature is None:
            signature = _by_code[code] = inspect.signature(func, follow_wrapped=False)
        return signature
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None
