"""Whether a ``BaseException`` raised while a task ran means the process is being told to stop.

A task's own ``KeyboardInterrupt``, ``SystemExit``, ``gevent.Timeout`` or custom
``BaseException`` is a failure of that task: let out of ``close()``, it makes gunicorn write a
second ``500`` after the complete response (sync, gevent), end the gthread worker, or drop
the keep-alive connection. Only a stop the process itself was asked for propagates:

* an exception raised by a Python signal handler, which runs on top of the interrupted task
  (gunicorn's timeout and quit handlers call ``sys.exit`` there), and
* ``KeyboardInterrupt`` in the main thread while Python's own SIGINT handler is installed:
  Ctrl-C in a development server (gunicorn installs a handler of its own).
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import types

__all__ = ["is_stop_request"]


def is_stop_request(error: BaseException) -> bool:
    """Whether ``error`` (not an ``Exception``) stops the process rather than failing the task.

    >>> is_stop_request(KeyboardInterrupt()) == (
    ...     signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ...     and threading.current_thread() is threading.main_thread()
    ... )
    True
    >>> is_stop_request(SystemExit(1))  # raised by the task itself
    False
    """
    if (
        isinstance(error, KeyboardInterrupt)
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        return True
    handlers = _signal_handler_code()
    if not handlers:
        return False
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code in handlers:
            return True
        traceback = traceback.tb_next
    return False


def _signal_handler_code() -> set[types.CodeType]:
    """The code of every Python function installed as a signal handler (read at failure
    time only: a server may install its handlers after bgtask was imported)."""
    code: set[types.CodeType] = set()
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        function = getattr(handler, "__func__", handler)
        handler_code = getattr(function, "__code__", None)
        if handler_code is not None:
            code.add(handler_code)
    return code
