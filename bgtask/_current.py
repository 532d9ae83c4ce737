"""Where a request's collection lives: in the WSGI environ, and in a contextvar for the call."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from ._collection import BackgroundTasks
    from ._request import RequestTasks

__all__ = [
    "BACKGROUND_KEY",
    "ENVIRON_KEY",
    "current_tasks",
    "get_background_tasks",
    "request_tasks",
]

#: The environ key holding the request's :class:`BackgroundTasks`.
ENVIRON_KEY: Final = "bgtask.tasks"
#: The environ key naming the response whose ``background`` this request attached.
BACKGROUND_KEY: Final = "bgtask.response_background"

#: The collection of the request whose app call is running in this context. Reset when the
#: call returns, so a thread reused by a threaded server never sees another request's.
current_tasks: Final[contextvars.ContextVar[RequestTasks | None]] = contextvars.ContextVar(
    "bgtask.current_tasks", default=None
)

_MISSING: Final = (
    "no bgtask collection here: wrap the WSGI app in bgtask.BackgroundTaskMiddleware "
    "(Flask: BgTask(app) from bgtask.flask; Django: add 'bgtask.django.BgTaskMiddleware' "
    "to MIDDLEWARE) and call this during a request; inside a "
    "streaming body generator, pass the request's environ"
)


def get_background_tasks(environ: WSGIEnvironment | None = None) -> BackgroundTasks:
    """The current request's :class:`BackgroundTasks`, to queue work on.

    With ``environ``, works anywhere during the request, including inside a streaming body
    generator. Without it, works anywhere in the call stack of the app call: the view, a
    helper, a dependency. Raises ``RuntimeError`` outside a request or without the middleware.

    >>> def signup(environ, start_response):
    ...     get_background_tasks().add_task(print, "welcome")
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"ok"]
    """
    return request_tasks(environ)


def request_tasks(environ: WSGIEnvironment | None = None) -> RequestTasks:
    """:func:`get_background_tasks`, as the request's own collection (for integrations)."""
    tasks: RequestTasks | None = (
        current_tasks.get() if environ is None else environ.get(ENVIRON_KEY)
    )
    if tasks is None:
        raise RuntimeError(_MISSING)
    return tasks
