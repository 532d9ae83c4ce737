"""The WSGI layer: a fresh collection per request, run when the server closes the response."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ._backend import Backend, CheckingBackend, backend_override
from ._closing import run_after_close
from ._current import ENVIRON_KEY, current_tasks
from ._offload import OffloadPool, default_pool
from ._options import TaskOptions
from ._request import RequestTasks, header_key
from ._unread import unread_background

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._events import Listener
    from ._policy import Scope

__all__ = ["BackgroundTaskMiddleware", "choose_backend"]

logger: Final = logging.getLogger("bgtask")


class BackgroundTaskMiddleware:
    """Runs each request's background tasks after the server has sent the response.

    Every request gets a fresh :class:`BackgroundTasks` in ``environ["bgtask.tasks"]``
    (also returned by :func:`get_background_tasks`). The tasks run in the response's
    ``close()``, which a WSGI server calls once the whole body is written. If the app
    raises, its tasks are discarded with a warning and the exception propagates unchanged.
    Nested middlewares share one collection: the outermost runs it, once.

    By default the tasks run inline, in ``close()``. ``backend`` takes where they go
    instead: an :class:`OffloadPool` (a pool of task threads), or the RQ and Celery
    backends; ``offload=True`` is shorthand for the process's default pool. ``task_scope``
    is an integration's hook around each task (Flask's app context), ``listeners`` are told
    of this app's task events besides the process's (:class:`TaskEvent`).
    ``request_id_header`` names the request header whose value is the events'
    ``request_id`` (where a request has none, or None is passed, an id is generated).
    ``task_timeout`` is the deadline, in seconds from its start, of every task without one
    of its own (``@bgtask.task``).

    >>> from wsgiref.simple_server import demo_app
    >>> app = BackgroundTaskMiddleware(demo_app)
    >>> app = BackgroundTaskMiddleware(demo_app, offload=True)
    """

    __slots__ = (
        "_check",
        "_request_id_key",
        "app",
        "backend",
        "listeners",
        "task_scope",
        "task_timeout",
    )

    def __init__(
        self,
        app: WSGIApplication,
        *,
        offload: bool | OffloadPool = False,
        backend: Backend | None = None,
        task_scope: Scope | None = None,
        listeners: Iterable[Listener] = (),
        task_timeout: float | None = None,
        request_id_header: str | None = "X-Request-ID",
    ) -> None:
        self.app = app
        # Checked as a task's own would be: a bad value fails here, at startup.
        self.task_timeout = TaskOptions(timeout=task_timeout).timeout
        #: Where requests' tasks go; None runs them inline, in close().
        self.backend = choose_backend(offload, backend)
        self._check = self.backend.check if isinstance(self.backend, CheckingBackend) else None
        self.task_scope = task_scope
        self.listeners = tuple(listeners)
        self._request_id_key = header_key(request_id_header)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        outer = environ.get(ENVIRON_KEY)
        if outer is not None:
            # An outer middleware owns this request's collection and will run it.
            token = current_tasks.set(outer)
            try:
                return self.app(environ, start_response)
            finally:
                current_tasks.reset(token)
        # A test's override (capture_tasks(run=False)) replaces where tasks go, not the
        # backend's check: a lambda an RQ worker could not import still fails in the test.
        override = backend_override()
        backend = self.backend if override is None else override
        tasks = RequestTasks(
            environ,
            check=self._check,
            scope=self.task_scope,
            listeners=self.listeners,
            task_timeout=self.task_timeout,
            request_id_key=self._request_id_key,
        )
        environ[ENVIRON_KEY] = tasks
        token = current_tasks.set(tasks)
        try:
            app_iter = self.app(environ, start_response)
        except BaseException as exc:
            tasks.discard(reason=f"the application raised {type(exc).__name__}")
            raise
        finally:
            current_tasks.reset(token)
        if type(app_iter).__module__ == "werkzeug.wsgi":
            _warn_if_background_unread(app_iter, environ)
        return run_after_close(app_iter, tasks, environ, backend)


def choose_backend(offload: bool | OffloadPool, backend: Backend | None) -> Backend | None:
    """The one backend ``offload`` and ``backend`` ask for (None: inline).

    ``offload=True`` is the process's default pool, ``offload=OffloadPool(...)`` that pool:
    shorthands for ``backend=``, which takes any :class:`Backend`.
    """
    if offload is not False and backend is not None:
        msg = "pass either offload or backend, not both (an OffloadPool is a backend)"
        raise ValueError(msg)
    if offload is True:
        return default_pool()
    if isinstance(offload, OffloadPool):
        return offload
    if offload is not False:
        msg = f"offload must be True, False or an OffloadPool, got {type(offload).__name__}"
        raise TypeError(msg)
    if backend is not None and not isinstance(backend, Backend):
        msg = f"a backend needs a submit(tasks) method, got {type(backend).__name__}"
        raise TypeError(msg)
    return backend


def _warn_if_background_unread(app_iter: Iterable[bytes], environ: WSGIEnvironment) -> None:
    problem = unread_background(app_iter, environ)
    if problem is not None:
        logger.warning("%s", problem)
