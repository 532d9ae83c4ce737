"""The functions an application declared that its workers may run, looked up by name.

A job names each function as ``module:qualname``. A worker that resolves those names
through an allow-list runs only what the application declared, and imports nothing a
message names: whoever can write to the broker can then choose among the declared
functions and their arguments, not any importable callable (``os:system``).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Final

from ._importable import import_problem, reference, same_callable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["AllowList", "plain", "shown"]

#: How much of a name from a message a log line shows.
SHOWN_LENGTH: Final = 200


class AllowList:
    """The declared functions, by reference; safe to extend from several threads.

    >>> import json
    >>> allowed = AllowList([json.dumps])
    >>> allowed.lookup("json:dumps") is json.dumps, "os:system" in allowed
    (True, False)
    """

    __slots__ = ("_functions", "_lock")

    def __init__(self, functions: Iterable[Callable[..., object]] = ()) -> None:
        self._functions: dict[str, Callable[..., object]] = {}
        self._lock = threading.Lock()
        for func in functions:
            self.declare(func)

    def declare(self, func: Callable[..., object], *, bound: bool = True) -> None:
        """Allow ``func``: a module-level function (sync or async) a worker can import.

        ``bound=False`` when a decorator declares it, before its module binds the name.
        """
        problem = import_problem(func, bound=bound)
        if problem is not None:
            msg = f"cannot declare {_name(func)} as a task: {problem}"
            raise TypeError(msg)
        name = reference(func)
        with self._lock:
            known = self._functions.get(name)
            if known is not None and not same_callable(known, func):
                msg = (
                    f"cannot declare {_name(func)} as a task: another function of that name "
                    "is declared already; give each task function a name of its own"
                )
                raise TypeError(msg)
            self._functions[name] = func

    def update(self, other: AllowList) -> None:
        """Declare everything ``other`` declares."""
        with other._lock:
            functions = list(other._functions.values())
        for func in functions:
            self.declare(func, bound=False)

    def allows(self, func: object) -> bool:
        """Whether ``func`` itself (not just its name) was declared."""
        name = f"{getattr(func, '__module__', '')}:{getattr(func, '__qualname__', '')}"
        known = self._functions.get(name)
        return known is not None and same_callable(known, func)

    def lookup(self, name: str) -> Callable[..., object] | None:
        """The function declared under ``name`` (``module:qualname``), or None."""
        return self._functions.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._functions

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"<AllowList of {len(self._functions)} function(s)>"


def shown(value: Any) -> str:
    """``value`` from a message, safe in a log line: escaped (``ascii``) and truncated.

    >>> shown("os:system\\nERROR forged line")
    "'os:system\\\\nERROR forged line'"
    """
    text = ascii(value)
    if len(text) > SHOWN_LENGTH:
        text = f"{text[:SHOWN_LENGTH]}... ({len(text)} characters)"
    return text


def plain(value: Any) -> str:
    """An id from a message as is when it is a plain token, else :func:`shown`.

    >>> plain("6f1c-42"), plain("6f1c\\nERROR")
    ('6f1c-42', "'6f1c\\\\nERROR'")
    """
    if isinstance(value, str) and 0 < len(value) <= 100 and _PLAIN.fullmatch(value):
        return value
    return shown(value)


_PLAIN: Final = re.compile(r"[A-Za-z0-9_.:-]+")


def _name(func: object) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or type(func).__name__
    return f"{module}.{qualname}"
