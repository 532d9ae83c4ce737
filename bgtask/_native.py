"""The interpreter's own threads and locks, even under gevent's monkey-patching.

The private loop and the offload pool run in native threads and coordinate with native
locks: a patched ``threading.Thread`` would be a greenlet, and a patched lock taken from a
thread without a gevent hub would block the wrong scheduler.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["allocate_lock", "get_ident", "native", "start_thread"]


def native(module: str, name: str) -> Any:
    """The unpatched ``module.name``, even when gevent has monkey-patched it.

    >>> allocate_lock().acquire(False)
    True
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


def start_thread(function: Callable[..., object], *args: object, name: str = "bgtask") -> None:
    """Run ``function(*args)`` in a new native thread called ``name``.

    The name is what ``threading.current_thread().name`` and log records' ``threadName``
    say (``bgtask-loop``, ``bgtask-offload-3``), not ``Dummy-7``. Traced and profiled like
    a ``threading.Thread`` would be (``threading.settrace`` and ``setprofile``: coverage and
    profilers see the loop's and the pool's code). Raises ``RuntimeError`` once the
    interpreter no longer starts threads (it is finalizing).

    >>> done = allocate_lock()
    >>> done.acquire()
    True
    >>> start_thread(done.release)
    >>> done.acquire(timeout=10)
    True
    """
    trace, profile = threading.gettrace(), threading.getprofile()

    def bootstrap() -> None:
        if trace is not None:
            sys.settrace(trace)
        if profile is not None:
            sys.setprofile(profile)
        # The interpreter's current_thread() registers a dummy Thread for this native one
        # (the one logging asks for); naming it is all a _thread thread can be given.
        _current_thread().name = name
        function(*args)

    _start_new_thread(bootstrap, ())


# Looked up once: gevent's patching replaces the module attributes, never these objects, so
# they are the interpreter's own whether gevent patched before bgtask was imported or after.
allocate_lock: Final[Callable[[], Any]] = native("_thread", "allocate_lock")
get_ident: Final[Callable[[], int]] = native("_thread", "get_ident")
_start_new_thread: Final[Callable[..., int]] = native("_thread", "start_new_thread")
_current_thread: Final[Callable[[], threading.Thread]] = native("threading", "current_thread")
