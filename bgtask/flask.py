"""Flask integration: every style of the seed frameworks, merged into one ordered queue.

Install with ``pip install 'wsgi-bgtask[flask]'``::

    from flask import Flask
    from bgtask import BackgroundTask, BackgroundTasks, background, get_background_tasks
    from bgtask.flask import BgTask

    app = Flask(__name__)
    BgTask(app)

    @app.post("/send-notification/<email>")
    def send_notification(email: str, tasks: BackgroundTasks):    # injected by annotation
        tasks.add_task(write_notification, email, message="some notification")
        return {"message": "Notification sent in the background"}

A request's tasks run after its response was sent, in this order: those queued during the
request (``get_background_tasks().add_task`` or an injected ``BackgroundTasks``, in call
order), then the returned response's ``background``, then ``@background(...)``'s. They run
inside a fresh ``app.app_context()`` (``current_app`` works; ``teardown_appcontext`` runs
after them) and never inside a request context. When the view raises, its queued tasks
are discarded with a warning.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
import typing
from typing import TYPE_CHECKING, Any, Final

import flask
from flask.globals import _cv_app, _cv_request

from ._collection import BackgroundTasks
from ._current import ENVIRON_KEY
from ._middleware import Backend, BackgroundTaskMiddleware, discard_tasks
from .werkzeug import enable_response_background

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._offload import OffloadPool

__all__ = ["BgTask"]

_ANNOTATED_TEXT: Final = re.compile(r"\s*(?:[\w.]+\.)?Annotated\[\s*([\w.]+)")

#: Flask's own context variables: a task gets a fresh app context and no request.
_FLASK_VARIABLES: Final[frozenset[contextvars.ContextVar[Any]]] = frozenset({_cv_app, _cv_request})


class BgTask:
    """The Flask extension: ``BgTask(app)``, or ``BgTask()`` then ``init_app(app)``.

    Installs :class:`~bgtask.BackgroundTaskMiddleware` on ``app.wsgi_app`` (so even
    ``send_file`` responses run their tasks), injects the request's
    :class:`~bgtask.BackgroundTasks` into view parameters annotated with it, runs a
    response's ``background``, and pushes a fresh app context around the tasks.
    ``offload`` and ``backend`` are passed to the middleware: with ``offload=True`` the
    tasks run on a pool of task threads, still inside a fresh app context.

    >>> app = flask.Flask("example")
    >>> BgTask(app).app is app
    True
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        offload: bool | OffloadPool = False,
        backend: Backend | None = None,
    ) -> None:
        self.app = app
        self.offload = offload
        self.backend = backend
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Install bgtask on ``app``; calling it again for the same app does nothing."""
        if "bgtask" in app.extensions:
            return
        # Built first: a bad offload or backend raises before anything is registered.
        middleware = BackgroundTaskMiddleware(
            _WithAppContext(app, app.wsgi_app), offload=self.offload, backend=self.backend
        )
        app.extensions["bgtask"] = self
        enable_response_background()
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.ensure_sync = _Injector(app.ensure_sync)  # type: ignore[method-assign]
        _discard_when_the_view_raises(app)


class _WithAppContext:
    """Tells the request's collection to run inside a fresh app context of ``app``."""

    __slots__ = ("around", "wsgi_app")

    def __init__(self, app: flask.Flask, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self.around = functools.partial(_FreshAppContext, app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_KEY].run_inside(self.around)
        return self.wsgi_app(environ, start_response)


class _FreshAppContext:
    """A new app context of ``app``, pushed around a request's tasks."""

    __slots__ = ("app", "context", "tasks")

    def __init__(self, app: flask.Flask, tasks: BackgroundTasks) -> None:
        self.app = app
        self.tasks = tasks

    def __enter__(self) -> None:
        self.context = self.app.app_context()
        self.context.push()
        # Each task keeps the variables it captured (a request id) but not Flask's: it sees
        # this app context, and has_request_context() is False.
        self.tasks.rebase(contextvars.copy_context(), exclude=_FLASK_VARIABLES)

    def __exit__(self, *exc_info: object) -> None:
        # teardown_appcontext runs here, after the tasks (database sessions go back).
        error = exc_info[1]
        self.context.pop(error if isinstance(error, BaseException) else None)


class _Injector:
    """Wraps ``app.ensure_sync``, through which Flask calls every view, to inject tasks.

    A view parameter annotated ``BackgroundTasks`` receives the request's collection. The
    parameters are looked up once per function (per method for a ``MethodView``), so a
    view that takes none costs one dictionary lookup.
    """

    __slots__ = ("by_function", "by_method", "ensure_sync")

    def __init__(self, ensure_sync: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        self.ensure_sync = ensure_sync
        self.by_function: dict[Callable[..., Any], tuple[str, ...]] = {}
        self.by_method: dict[tuple[Callable[..., Any], str], tuple[str, ...]] = {}

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        runnable = self.ensure_sync(func)
        names = self.by_function.get(func)
        if names is None:
            if getattr(func, "view_class", None) is None:
                names = self.by_function[func] = _parameters_wanting_tasks(func)
            elif flask.has_request_context():
                method = flask.request.method
                key = (func, method)
                names = self.by_method.get(key)
                if names is None:
                    names = self.by_method[key] = _parameters_wanting_tasks(_handler(func, method))
            else:
                names = ()
        if not names or not flask.has_request_context():
            return runnable
        tasks = flask.request.environ[ENVIRON_KEY]
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


def _discard_when_the_view_raises(app: flask.Flask) -> None:
    """Drop the queued tasks when the view (or a before_request function) raises.

    Flask turns the exception into an error response, so the middleware never sees it.
    Error handlers that run afterwards may still queue tasks of their own.
    """
    handle_user_exception = app.handle_user_exception

    def discarding(error: Exception) -> Any:
        tasks = flask.request.environ.get(ENVIRON_KEY)
        if tasks is not None:
            discard_tasks(tasks, f"the view raised {type(error).__name__}", seal=False)
        return handle_user_exception(error)

    app.handle_user_exception = discarding  # type: ignore[method-assign,assignment]

    def on_unhandled(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
        tasks = flask.request.environ.get(ENVIRON_KEY)
        if tasks is not None:
            discard_tasks(tasks, f"the request raised {type(exception).__name__}", seal=False)

    flask.got_request_exception.connect(on_unhandled, app, weak=False)
