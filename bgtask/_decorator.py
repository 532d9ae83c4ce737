"""``@background(...)``: fixed tasks that run after each response of an app or a view."""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import TYPE_CHECKING, Any, TypeVar

from ._collection import ROUTE_STAGE, BackgroundTasks, Item, check_item
from ._current import ENVIRON_KEY, get_background_tasks
from ._middleware import BackgroundTaskMiddleware

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["background"]

F = TypeVar("F", bound="Callable[..., Any]")


def background(*tasks: Item) -> Callable[[F], F]:
    """Attach fixed tasks to a WSGI app or a view, as Esmerald's ``background=`` does.

    They run after each response, after the tasks the request queued (and, in Flask, after
    the response's ``background``), in the request's contextvars context. On a WSGI app it
    works with or without :class:`BackgroundTaskMiddleware` installed around it. On a view
    function of a framework (Flask: place it under ``@app.route``), the middleware must be
    installed; ``async def`` views stay async.

    >>> from bgtask import BackgroundTask
    >>> def write_log_sync() -> None: ...
    >>> @background(BackgroundTask(write_log_sync))
    ... def log(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"logged"]
    """
    for item in tasks:
        check_item(item)

    def decorate(target: F) -> F:
        if inspect.iscoroutinefunction(target):
            return _async_view(target, tasks)  # type: ignore[return-value]
        return _app_or_view(target, tasks)  # type: ignore[return-value]

    return decorate


def _attach(collection: BackgroundTasks, tasks: Sequence[Item]) -> None:
    # Rebound per request so each run sees that request's contextvars (a request id).
    context = contextvars.copy_context()
    for item in tasks:
        collection.attach(item.in_context(context), stage=ROUTE_STAGE)


def _is_wsgi_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return not kwargs and len(args) == 2 and isinstance(args[0], dict) and callable(args[1])


def _app_or_view(target: Callable[..., Any], tasks: Sequence[Item]) -> Callable[..., Any]:
    def attach_fixed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app_iter: Iterable[bytes] = target(environ, start_response)
        _attach(environ[ENVIRON_KEY], tasks)
        return app_iter

    middleware = BackgroundTaskMiddleware(attach_fixed)

    @functools.wraps(target)
    def with_background(*args: Any, **kwargs: Any) -> Any:
        if _is_wsgi_call(args, kwargs):
            # A WSGI app: the middleware gives it a collection when none is installed.
            return middleware(*args)
        # A framework's view: queue after it returned, so a raising view queues nothing.
        result = target(*args, **kwargs)
        _attach(get_background_tasks(), tasks)
        return result

    return with_background


def _async_view(target: Callable[..., Any], tasks: Sequence[Item]) -> Callable[..., Any]:
    @functools.wraps(target)
    async def with_background(*args: Any, **kwargs: Any) -> Any:
        result = await target(*args, **kwargs)
        _attach(get_background_tasks(), tasks)
        return result

    return with_background
