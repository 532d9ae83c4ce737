"""State that belongs to one process: built on first use, built afresh after ``fork()``.

A forked child inherits its parent's objects but not its threads: a loop or a pool thread
that looks alive there is gone, and a lock a parent thread held stays held. Every piece of
per-process state (the private loop, each offload pool, the inline runs) lives in a
:class:`PerProcess`, which compares the owner pid on each use and is forgotten, lock and
all, in a child (``os.register_at_fork``); the parent's state is never used or closed there.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._native import allocate_lock

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PerProcess"]

T = TypeVar("T")

_all: weakref.WeakSet[PerProcess[Any]] = weakref.WeakSet()


class PerProcess(Generic[T]):
    """``factory()``'s result for the current process, built once per process.

    >>> counters = PerProcess(list)
    >>> counters.get() is counters.get()
    True
    >>> PerProcess(list).peek() is None
    True
    """

    __slots__ = ("__weakref__", "_factory", "_lock", "_pid", "_state")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock: Any = allocate_lock()
        self._state: T | None = None
        self._pid = 0
        _all.add(self)

    def get(self) -> T:
        """This process's state, built now if it was not yet."""
        state, pid = self._state, os.getpid()
        if state is not None and self._pid == pid:
            return state
        with self._lock:
            if self._state is None or self._pid != pid:
                self._state = self._factory()
                self._pid = pid
            return self._state

    def peek(self) -> T | None:
        """This process's state if it was built, else None (nothing to drain or cut)."""
        state = self._state
        return state if state is not None and self._pid == os.getpid() else None

    def _forget(self) -> None:
        self._state = None
        self._lock = allocate_lock()


def _forget_all_in_child() -> None:
    for per_process in list(_all):
        per_process._forget()


os.register_at_fork(after_in_child=_forget_all_in_child)
