"""Flask views that take the request's tasks: parameters annotated ``BackgroundTasks``."""

from __future__ import annotations

import functools
import inspect
import re
import typing
from typing import TYPE_CHECKING, Any, Final

import flask

from ._collection import BackgroundTasks
from ._current import ENVIRON_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Injector", "hint_missing_extension"]

_ANNOTATED_TEXT: Final = re.compile(r"\s*(?:[\w.]+\.)?Annotated\[\s*([\w.]+)")


class Injector:
    """Wraps ``app.ensure_sync``, through which Flask calls every view, to inject tasks.

    A view parameter annotated ``BackgroundTasks`` receives the request's collection.
    Only the request's own view function is looked at (hooks, error handlers and
    per-request closures such as ``after_this_request`` pass straight through), and its
    parameters are looked up once per endpoint and method: the cache grows with the
    routes, never with traffic.
    """

    __slots__ = ("app", "by_endpoint", "ensure_sync")

    def __init__(
        self, app: flask.Flask, ensure_sync: Callable[[Callable[..., Any]], Callable[..., Any]]
    ) -> None:
        self.app = app
        self.ensure_sync = ensure_sync
        #: (endpoint, method) -> (the view function, its parameters wanting the tasks).
        self.by_endpoint: dict[tuple[str, str], tuple[Callable[..., Any], tuple[str, ...]]] = {}

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        runnable = self.ensure_sync(func)
        if not flask.has_request_context():
            return runnable
        request = flask.request
        endpoint = request.endpoint
        if endpoint is None or self.app.view_functions.get(endpoint) is not func:
            return runnable
        key = (endpoint, request.method)
        cached = self.by_endpoint.get(key)
        if cached is None or cached[0] is not func:  # first call, or the view was replaced
            cached = self.by_endpoint[key] = (
                func,
                _parameters_wanting_tasks(_handler(func, request.method)),
            )
        names = cached[1]
        if not names:
            return runnable
        tasks = request.environ[ENVIRON_KEY]
        return functools.partial(runnable, **dict.fromkeys(names, tasks))


def _handler(view: Callable[..., Any], method: str) -> Callable[..., Any]:
    """The function Flask will call for ``method``: a MethodView's method, or the view."""
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    handler = getattr(view_class, method.lower(), None)
    if handler is None and method == "HEAD":
        handler = getattr(view_class, "get", None)
    if handler is None:
        handler = view_class.dispatch_request
    return handler  # type: ignore[no-any-return]


def _parameters_wanting_tasks(func: Callable[..., Any]) -> tuple[str, ...]:
    try:
        signature = inspect.signature(func, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        # A forward reference that cannot be resolved: read the annotation's text.
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            return ()
    except ValueError:
        return ()
    return tuple(
        name
        for name, parameter in signature.parameters.items()
        if _is_background_tasks(parameter.annotation)
    )


def _is_background_tasks(annotation: Any) -> bool:
    if annotation is BackgroundTasks:
        return True
    if isinstance(annotation, str):
        # Unresolvable (a sibling annotation imported under TYPE_CHECKING): read the text,
        # seeing through Annotated[...] as the resolved path does.
        match = _ANNOTATED_TEXT.match(annotation)
        name = match.group(1) if match else annotation.strip()
        return name.rsplit(".", 1)[-1] == "BackgroundTasks"
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_background_tasks(typing.get_args(annotation)[0])
    return False


def hint_missing_extension(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
    """Flask's ``got_request_exception``: explain a view's ``BackgroundTasks`` parameter
    that nothing filled in, on an app without ``BgTask`` (a note on the exception)."""
    if "bgtask" in sender.extensions or not isinstance(exception, TypeError):
        return
    if not flask.has_request_context() or "required" not in str(exception):
        return
    request = flask.request
    view = sender.view_functions.get(request.endpoint or "")
    if view is None:
        return
    names = _parameters_wanting_tasks(_handler(view, request.method))
    if any(repr(name) in str(exception) for name in names):
        exception.add_note(
            f"bgtask: the view {request.endpoint!r} takes a BackgroundTasks parameter "
            f"({', '.join(names)}), but BgTask is not installed on this app: add "
            "`from bgtask.flask import BgTask` and `BgTask(app)` (or bgtask.init_app(app))"
        )
