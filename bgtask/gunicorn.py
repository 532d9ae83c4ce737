"""gunicorn server hooks for bgtask.

A worker that exits while bgtask drains its pending tasks (after ``--max-requests``, on a
reload, or at shutdown) stops notifying the master, and the master's ``--timeout`` then
kills it mid-task (``WORKER TIMEOUT``). This hook keeps the heartbeat going during that
drain. In your ``gunicorn.conf.py``::

    from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)

or, from a ``post_worker_init`` of your own, call :func:`keep_heartbeat_while_draining`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ._exit import set_exit_heartbeat

__all__ = ["keep_heartbeat_while_draining", "post_worker_init"]


def keep_heartbeat_while_draining(worker: Any) -> None:
    """Notify gunicorn's master for ``worker`` while bgtask drains tasks at exit.

    gunicorn's heartbeat is the modification time of a temporary file the master watches;
    the worker closes its handle before the interpreter exits, so bgtask keeps a handle of
    its own, taken now, and touches the file the same way.

    >>> class Worker:
    ...     def notify(self) -> None: ...
    >>> keep_heartbeat_while_draining(Worker())
    >>> set_exit_heartbeat(None)  # (this example runs in a process that is no worker)
    """
    tmp = getattr(worker, "tmp", None)
    fileno = getattr(tmp, "fileno", None)
    if fileno is None:
        set_exit_heartbeat(worker.notify)
        return
    handle = os.dup(fileno())

    def notify() -> None:
        now = time.monotonic()  # the clock gunicorn's own notify() writes
        os.utime(handle, (now, now))

    set_exit_heartbeat(notify)


def post_worker_init(worker: Any) -> None:
    """The gunicorn ``post_worker_init`` hook: see :func:`keep_heartbeat_while_draining`.

    >>> class Worker:
    ...     def notify(self) -> None: ...
    >>> post_worker_init(Worker())
    >>> set_exit_heartbeat(None)
    """
    keep_heartbeat_while_draining(worker)
