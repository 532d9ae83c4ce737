"""gunicorn server hooks for bgtask. In your ``gunicorn.conf.py``::

    from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)

or, from a ``post_worker_init`` of your own, call :func:`keep_heartbeat_while_draining`,
:func:`name_what_graceful_timeout_cuts` and :func:`log_to_the_error_log`. Three things
happen without it:

* bgtask's log lines (a task's failure and its traceback) are printed bare on stderr, with
  no timestamp, level or pid, whatever ``--log-level`` says: the hook sends them to
  gunicorn's error log, in its format and at its level, unless logging was configured;

* a worker that exits while bgtask drains its pending tasks (after ``--max-requests``, on a
  reload, or at shutdown) stops notifying the master, and the master's ``--timeout`` kills
  it mid-task (``WORKER TIMEOUT``): the hook keeps the heartbeat going during that drain;
* after SIGTERM the master kills a worker that is still busy when ``graceful_timeout``
  ends (SIGKILL: nothing more runs, nothing is logged). gthread spends that whole time
  waiting for its connections, so bgtask's exit drain never starts: the hook names, a
  second before the kill, the tasks that are still running or not started.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any, Final

from ._exit import cut_all, set_exit_heartbeat
from ._native import allocate_lock, start_thread

__all__ = [
    "keep_heartbeat_while_draining",
    "log_to_the_error_log",
    "name_what_graceful_timeout_cuts",
    "post_worker_init",
]

#: How long before the master's SIGKILL the pending tasks are named.
_MARGIN: Final = 1.0


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


def name_what_graceful_timeout_cuts(worker: Any) -> None:
    """After SIGTERM, name the tasks still pending just before ``graceful_timeout`` ends.

    Wraps the worker's SIGTERM handler (installed by gunicorn before ``post_worker_init``):
    the signal then also starts a timer in a native thread that, a second before the
    master's SIGKILL, logs an ERROR per kind of pending work (inline, offloaded, async) and
    cancels the async tasks so they can clean up. A worker that exits in time stops it.
    """
    graceful = float(getattr(getattr(worker, "cfg", None), "graceful_timeout", 30))
    previous = signal.getsignal(signal.SIGTERM)
    armed: list[bool] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        if not armed:
            armed.append(True)
            start_thread(_cut_before_kill, graceful, name="bgtask-deadline")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _cut_before_kill(graceful: float) -> None:
    wait = allocate_lock()
    wait.acquire()
    wait.acquire(timeout=max(0.0, graceful - min(_MARGIN, graceful / 2)))  # never released
    cut_all(f"gunicorn's graceful timeout ({graceful:g} s) ends in a moment")


def log_to_the_error_log(worker: Any) -> None:
    """Log bgtask's records through gunicorn's error log (``--error-logfile``, its format
    with time, pid and level, and ``--log-level``), unless the application configured
    logging itself (a handler on the ``bgtask`` or the root logger: then nothing changes).

    >>> class Worker:
    ...     log = None
    >>> log_to_the_error_log(Worker())  # no gunicorn logger: nothing to do
    """
    error_log = getattr(getattr(worker, "log", None), "error_log", None)
    ours = logging.getLogger("bgtask")
    if not isinstance(error_log, logging.Logger) or ours.handlers or logging.getLogger().handlers:
        return
    for handler in error_log.handlers:
        ours.addHandler(handler)
    ours.setLevel(error_log.level)
    ours.propagate = False  # the root has no handler: Python's last resort would print again


def post_worker_init(worker: Any) -> None:
    """The gunicorn ``post_worker_init`` hook: :func:`keep_heartbeat_while_draining`,
    :func:`name_what_graceful_timeout_cuts` and :func:`log_to_the_error_log`.

    >>> class Worker:
    ...     def notify(self) -> None: ...
    >>> previous = signal.getsignal(signal.SIGTERM)
    >>> post_worker_init(Worker())
    >>> set_exit_heartbeat(None)
    >>> _ = signal.signal(signal.SIGTERM, previous)  # (this process is no worker)
    """
    keep_heartbeat_while_draining(worker)
    name_what_graceful_timeout_cuts(worker)
    log_to_the_error_log(worker)
