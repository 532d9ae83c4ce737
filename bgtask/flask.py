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

from typing import TYPE_CHECKING, Any

from ._extras import missing

try:
    import flask
except ImportError as error:  # a clear message naming the extra
    raise missing("bgtask.flask", "flask", "flask") from error

from ._current import ENVIRON_KEY
from ._flask_config import UNSET, ClosingFlaskClient, options_from_config
from ._flask_scope import AppContextScope
from ._flask_views import Injector, hint_missing_extension
from ._job import set_worker_scope
from ._middleware import BackgroundTaskMiddleware
from .werkzeug import BackgroundResponseMixin, attach_response_background

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._backend import Backend
    from ._events import Listener
    from ._offload import OffloadPool
    from ._request import RequestTasks

__all__ = ["BackgroundResponse", "BgTask", "ClosingFlaskClient", "worker_context"]


class BgTask:
    """The Flask extension: ``BgTask(app)``, or ``BgTask()`` then ``init_app(app)``.

    Installs :class:`~bgtask.BackgroundTaskMiddleware` on ``app.wsgi_app`` (so even
    ``send_file`` responses run their tasks), injects the request's
    :class:`~bgtask.BackgroundTasks` into view parameters annotated with it, runs a
    response's ``background``, and runs each task in a fresh app context.
    ``offload``, ``backend`` and ``listeners`` are passed to the middleware: with
    ``offload=True`` the tasks run on a pool of task threads, still each inside a fresh app
    context; ``listeners`` (and those of ``app.config["BGTASK_LISTENERS"]``) are told of
    this app's task events, whose ``request_id`` is the ``request_id_header``
    (``BGTASK_REQUEST_ID_HEADER``, default ``X-Request-ID``). Where not given, ``offload``
    and ``backend`` come from ``app.config`` (``BGTASK_OFFLOAD``, ``BGTASK_OFFLOAD_THREADS``,
    ``BGTASK_OFFLOAD_MAX_PENDING``, ``BGTASK_BACKEND``; ``BGTASK_EXIT_TIMEOUT`` too), and
    ``task_timeout``, the deadline of tasks without one of their own, from
    ``BGTASK_TASK_TIMEOUT``. The app's
    ``test_client()`` closes its responses (:class:`ClosingFlaskClient`) unless the app set a
    ``test_client_class`` of its own.

    >>> app = flask.Flask("example")
    >>> BgTask(app).app is app
    True
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        offload: bool | OffloadPool = UNSET,
        backend: Backend | None = None,
        listeners: Iterable[Listener] = (),
        task_timeout: float | None = UNSET,
        request_id_header: str | None = UNSET,
    ) -> None:
        self.app = app
        self.task_timeout = task_timeout
        self.offload = offload
        self.backend = backend
        self.listeners = tuple(listeners)
        self.request_id_header = request_id_header
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Install bgtask on ``app``; calling it again for the same app does nothing."""
        if "bgtask" in app.extensions:
            return
        offload, backend = options_from_config(app, self.offload, self.backend)
        # Built first: a bad offload or backend raises before anything is registered.
        middleware = BackgroundTaskMiddleware(
            app.wsgi_app,
            offload=offload,
            backend=backend,
            task_scope=AppContextScope(app),
            listeners=(*self.listeners, *app.config.get("BGTASK_LISTENERS", ())),
            request_id_header=(
                app.config.get("BGTASK_REQUEST_ID_HEADER", "X-Request-ID")
                if self.request_id_header is UNSET
                else self.request_id_header
            ),
            task_timeout=(
                app.config.get("BGTASK_TASK_TIMEOUT")
                if self.task_timeout is UNSET
                else self.task_timeout
            ),
        )
        app.extensions["bgtask"] = self
        if app.test_client_class is None:
            app.test_client_class = ClosingFlaskClient
        # Every response a view or an error handler returns passes here (send_file's too).
        app.after_request(_attach_background)
        app.wsgi_app = middleware  # type: ignore[method-assign]
        app.ensure_sync = Injector(app, app.ensure_sync)  # type: ignore[method-assign]
        _discard_when_the_view_raises(app)


class BackgroundResponse(BackgroundResponseMixin, flask.Response):
    """A Flask response with a typed ``background`` (for mypy; ``BgTask`` reads
    ``background`` from any response). Set it as ``app.response_class`` or build one.

    >>> response = BackgroundResponse("Signup successful")
    >>> response.background is None
    True
    """


def worker_context(app: flask.Flask | Callable[[], flask.Flask]) -> flask.Flask:
    """On an RQ or Celery worker: run every job's tasks in a fresh app context of ``app`` (or
    of the app the factory ``app()`` builds), as they run in the web process. Call it once,
    in the module the worker imports (RQ: ``rq worker -c that.module``; Celery: the module
    ``-A`` names). Returns the app.

    >>> app = worker_context(lambda: flask.Flask("myapp"))
    >>> app.name
    'myapp'
    >>> set_worker_scope(None)  # (this process is no worker)
    """
    built = app if isinstance(app, flask.Flask) else app()
    set_worker_scope(AppContextScope(built))
    return built


def _attach_background(response: flask.Response) -> flask.Response:
    attach_response_background(response, flask.request.environ)
    return response


def _discard_when_the_view_raises(app: flask.Flask) -> None:
    """Drop the queued tasks when the view (or a before_request function) raises.

    Flask turns the exception into an error response, so the middleware never sees it.
    Error handlers that run afterwards may still queue tasks of their own.
    """
    handle_user_exception = app.handle_user_exception

    def discarding(error: Exception) -> Any:
        tasks: RequestTasks | None = flask.request.environ.get(ENVIRON_KEY)
        if tasks is not None:
            tasks.discard(seal=False, reason=f"the view raised {type(error).__name__}")
        return handle_user_exception(error)

    app.handle_user_exception = discarding  # type: ignore[method-assign,assignment]

    def on_unhandled(sender: flask.Flask, exception: BaseException, **extra: Any) -> None:
        tasks: RequestTasks | None = flask.request.environ.get(ENVIRON_KEY)
        if tasks is not None:
            tasks.discard(seal=False, reason=f"the request raised {type(exception).__name__}")

    flask.got_request_exception.connect(on_unhandled, app, weak=False)


# Any app, even one BgTask never saw: a view taking BackgroundTasks on such an app fails with
# Flask's bare "missing 1 required positional argument"; the exception says why, and the fix.
flask.got_request_exception.connect(hint_missing_extension, weak=False)
