"""``@background(...)``: fixed tasks that run after each response of a WSGI app."""

from __future__ import annotations

import contextvars
import functools
from typing import TYPE_CHECKING

from ._collection import ROUTE_STAGE, BackgroundTasks, Item, check_item
from ._current import ENVIRON_KEY
from ._middleware import BackgroundTaskMiddleware

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["background"]


def background(*tasks: Item) -> Callable[[WSGIApplication], WSGIApplication]:
    """Attach fixed tasks to a WSGI app, as Esmerald's ``background=`` does.

    They run after each of the app's responses, after the tasks the request queued, in the
    request's contextvars context. Works with or without :class:`BackgroundTaskMiddleware`
    installed around the app.

    >>> from bgtask import BackgroundTask
    >>> def write_log_sync() -> None: ...
    >>> @background(BackgroundTask(write_log_sync))
    ... def log(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"logged"]
    """
    for item in tasks:
        check_item(item)

    def decorate(app: WSGIApplication) -> WSGIApplication:
        def attach_fixed(
            environ: WSGIEnvironment, start_response: StartResponse
        ) -> Iterable[bytes]:
            app_iter = app(environ, start_response)
            collection: BackgroundTasks = environ[ENVIRON_KEY]
            # Rebound per request: one shared task object must not run in one shared
            # context from several threads, and it should see this request's contextvars.
            context = contextvars.copy_context()
            for item in tasks:
                collection.attach(item.in_context(context), stage=ROUTE_STAGE)
            return app_iter

        middleware = BackgroundTaskMiddleware(attach_fixed)

        @functools.wraps(app)
        def with_background(
            environ: WSGIEnvironment, start_response: StartResponse
        ) -> Iterable[bytes]:
            return middleware(environ, start_response)

        return with_background

    return decorate
