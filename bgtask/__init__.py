"""Background tasks for WSGI: queue work in a view, run it after the response is sent.

>>> from bgtask import BackgroundTaskMiddleware, get_background_tasks
>>> def send_email(to: str) -> None: ...
>>> def app(environ, start_response):
...     get_background_tasks().add_task(send_email, "user@example.com")
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [b"queued"]
>>> app = BackgroundTaskMiddleware(app)
"""

from __future__ import annotations

import importlib.metadata as _metadata

from . import _run  # installs how calling a task or a collection runs it
from ._backend import Backend as Backend
from ._backend import CheckingBackend as CheckingBackend
from ._collection import BackgroundTasks as BackgroundTasks
from ._current import get_background_tasks as get_background_tasks
from ._decorator import background as background
from ._events import TaskEvent as TaskEvent
from ._events import subscribe as subscribe
from ._events import unsubscribe as unsubscribe
from ._exit import drain as drain
from ._exit import set_exit_timeout as set_exit_timeout
from ._failed import TasksFailed as TasksFailed
from ._middleware import BackgroundTaskMiddleware as BackgroundTaskMiddleware
from ._offload import OffloadPool as OffloadPool
from ._options import TaskOptions as TaskOptions
from ._options import task as task
from ._queued import QueuedListener as QueuedListener
from ._request import RequestTasks as RequestTasks
from ._retry import RetryPolicy as RetryPolicy
from ._task import BackgroundTask as BackgroundTask

__all__ = [
    "Backend",
    "BackgroundTask",
    "BackgroundTaskMiddleware",
    "BackgroundTasks",
    "CheckingBackend",
    "OffloadPool",
    "QueuedListener",
    "RequestTasks",
    "RetryPolicy",
    "TaskEvent",
    "TaskOptions",
    "TasksFailed",
    "background",
    "drain",
    "get_background_tasks",
    "set_exit_timeout",
    "subscribe",
    "task",
    "unsubscribe",
]

try:
    __version__ = _metadata.version("wsgi-bgtask")
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Reprs and tracebacks show the public path (bgtask.BackgroundTasks), as httpx does.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _metadata, _name, _run
