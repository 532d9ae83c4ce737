"""Whether an engine's serializer can carry a task's arguments to a worker, checked at add_task.

Two things are checked: that the serializer takes the arguments, and, for a pickle-based
one (RQ's default, Celery's ``pickle``), that they reference no class or function defined
in ``__main__``: pickle stores those by name, ``__main__`` is another module in a worker,
and the job would fail there (RQ's ``DeserializationError``). Messages name the argument
(its position or keyword) and its type, never its value, nor the serializer's own message,
which may quote the value (an email, a token).
"""

from __future__ import annotations

import pickle
import types
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["Serializer", "arguments_problem"]


class Serializer(NamedTuple):
    """An engine's serializer: its name for messages, its ``dumps``, whether it pickles.

    >>> Serializer("JSON", repr, pickles=False).name
    'JSON'
    """

    name: str
    dumps: Callable[[Any], object]
    pickles: bool


def arguments_problem(
    args: tuple[Any, ...], kwargs: dict[str, Any], serializer: Serializer
) -> str | None:
    """Why ``serializer`` could not carry ``args`` and ``kwargs`` to a worker, or None.

    >>> arguments_problem((1, "a"), {}, Serializer("pickle", pickle.dumps, pickles=True))
    >>> arguments_problem((1, {2}), {}, Serializer("JSON", _json, pickles=False))
    'its positional argument 2 (of type set) cannot be serialized with JSON'
    """
    if _dumps([list(args), kwargs], serializer):
        return None
    for label, value in _labelled(args, kwargs):
        try:
            _dump(value, serializer)
        except _MainReference as found:
            return (
                f"its {label} (of type {type(value).__name__}) refers to {found.name}, defined "
                "in __main__ (the script being run), which is another module in a worker; "
                "move it into an importable module"
            )
        except Exception:
            kind = type(value).__name__
            return f"its {label} (of type {kind}) cannot be serialized with {serializer.name}"
    kinds = ", ".join(type(value).__name__ for _, value in _labelled(args, kwargs))
    return f"its arguments (of types {kinds}) cannot be serialized together with {serializer.name}"


def _labelled(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for position, value in enumerate(args, 1):
        yield f"positional argument {position}", value
    for name, value in kwargs.items():
        yield f"keyword argument {name!r}", value


def _dumps(value: Any, serializer: Serializer) -> bool:
    try:
        _dump(value, serializer)
    except Exception:
        return False  # which argument, and why, is worked out one by one
    return True


def _dump(value: Any, serializer: Serializer) -> None:
    if serializer.pickles:
        # The very pickling the engine does, watching what it stores by name.
        _Checking(_Discard(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    else:
        serializer.dumps(value)


class _MainReference(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Checking(pickle.Pickler):
    """A pickler that refuses classes and functions from ``__main__``, which it would store
    by name (``reducer_override`` sees every class and function before it is saved)."""

    def reducer_override(self, obj: Any) -> Any:
        stored_by_name = type | types.FunctionType | types.BuiltinFunctionType
        if isinstance(obj, stored_by_name) and getattr(obj, "__module__", None) == "__main__":
            raise _MainReference(f"__main__.{getattr(obj, '__qualname__', '?')}")
        return NotImplemented


class _Discard:
    """A file that forgets what is written: only whether pickling succeeds matters."""

    def write(self, data: bytes) -> int:
        return len(data)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
