"""The WSGI layer: a fresh collection per request, run when the server closes the response."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from ._collection import BackgroundTasks, Check, names_of
from ._current import ENVIRON_KEY, current_tasks
from ._offload import OffloadPool, default_pool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Hands a request's collection to where it runs; never raises an ``Exception``.
Submit: TypeAlias = "Callable[[BackgroundTasks], None]"


class Backend(Protocol):
    """Where a request's tasks go once its response was sent (offload pool, RQ, Celery).

    ``submit`` is called in ``close()`` with the request's collection; it must not raise
    and must lose nothing: a backend that cannot hand the tasks off runs them itself. A
    backend may also have ``check(task)``, called as each task is queued, which raises
    ``TypeError`` for a task it could not run (a lambda an RQ worker cannot import).

    >>> class Inline:
    ...     def submit(self, tasks):
    ...         tasks.run_for_request()
    >>> app = BackgroundTaskMiddleware(lambda environ, start_response: [], backend=Inline())
    """

    def submit(self, tasks: BackgroundTasks, /) -> None:
        """Run or hand off ``tasks``; must not raise, and must lose nothing."""


__all__ = ["Backend", "BackgroundTaskMiddleware", "discard_tasks", "run_after_close"]

logger: Final = logging.getLogger("bgtask")


class BackgroundTaskMiddleware:
    """Runs each request's background tasks after the server has sent the response.

    Every request gets a fresh :class:`BackgroundTasks` in ``environ["bgtask.tasks"]``
    (also returned by :func:`get_background_tasks`). The tasks run in the response's
    ``close()``, which a WSGI server calls once the whole body is written. If the app
    raises, its tasks are discarded with a warning and the exception propagates unchanged.
    Nested middlewares share one collection: the outermost runs it, once.

    By default the tasks run inline, in ``close()``. With ``offload=True`` (or an
    :class:`OffloadPool` of your own) ``close()`` hands them to a pool of task threads and
    returns at once. ``backend`` takes any object with a ``submit(tasks)`` method, such as
    the RQ or Celery backends.

    >>> from wsgiref.simple_server import demo_app
    >>> app = BackgroundTaskMiddleware(demo_app)
    >>> app = BackgroundTaskMiddleware(demo_app, offload=True)
    """

    __slots__ = ("_check", "_submit", "app")

    def __init__(
        self,
        app: WSGIApplication,
        *,
        offload: bool | OffloadPool = False,
        backend: Backend | None = None,
    ) -> None:
        self.app = app
        if offload is not False and backend is not None:
            msg = "pass either offload or backend, not both (an OffloadPool is a backend)"
            raise ValueError(msg)
        if offload is True:
            backend = default_pool()
        elif isinstance(offload, OffloadPool):
            backend = offload
        elif offload is not False:
            msg = f"offload must be True, False or an OffloadPool, got {type(offload).__name__}"
            raise TypeError(msg)
        #: None runs the tasks inline, in close().
        self._submit = None if backend is None else backend.submit
        #: A backend that runs tasks elsewhere checks each one as it is queued.
        self._check: Check | None = getattr(backend, "check", None)
        if "werkzeug.wrappers" in sys.modules:
            # Werkzeug is in use: let its responses carry ``background`` (bgtask.werkzeug).
            from .werkzeug import enable_response_background

            enable_response_background()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        tasks = environ.get(ENVIRON_KEY)
        if tasks is not None:
            # An outer middleware owns this request's collection and will run it.
            token = current_tasks.set(tasks)
            try:
                return self.app(environ, start_response)
            finally:
                current_tasks.reset(token)
        tasks = BackgroundTasks.for_request(self._check)
        environ[ENVIRON_KEY] = tasks
        token = current_tasks.set(tasks)
        try:
            app_iter = self.app(environ, start_response)
        except BaseException as exc:
            discard_tasks(tasks, f"the application raised {type(exc).__name__}")
            raise
        finally:
            current_tasks.reset(token)
        return run_after_close(app_iter, tasks, environ, self._submit)


def run_after_close(
    app_iter: Iterable[bytes],
    tasks: BackgroundTasks,
    environ: WSGIEnvironment,
    submit: Submit | None = None,
) -> Iterable[bytes]:
    """Return ``app_iter`` made to run ``tasks`` in its ``close()``.

    An instance of the server's ``wsgi.file_wrapper`` is returned itself, its ``close``
    chained, so the server keeps its sendfile path; anything else is wrapped.
    """
    watched = not tasks.is_empty()
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type) and isinstance(app_iter, file_wrapper):
        closing = (_WatchedClosingIterable if watched else _ClosingIterable)(
            app_iter, tasks, submit
        )
        try:
            app_iter.close = closing.close  # type: ignore[attr-defined]
        except AttributeError:
            return closing  # a wrapper with __slots__: wrapping it is all we can do
        return app_iter
    kind = type(app_iter)
    sized = _sized_types.get(kind)
    if sized is None:
        sized = _sized_types[kind] = hasattr(kind, "__len__")
    if sized:
        if watched:
            return _WatchedSizedClosingIterable(app_iter, tasks, submit)
        return _SizedClosingIterable(app_iter, tasks, submit)
    if watched:
        return _WatchedClosingIterable(app_iter, tasks, submit)
    return _ClosingIterable(app_iter, tasks, submit)


#: Whether responses of a type have a len(): asked once per type, not per request.
_sized_types: dict[type, bool] = {list: True, tuple: True}


def discard_tasks(tasks: BackgroundTasks, reason: str, *, seal: bool = True) -> None:
    """Drop a request's tasks without running them, with one warning naming them."""
    items = tasks.discard(seal=seal)
    if items:
        names = names_of(items)
        logger.warning(
            "discarded %d background task(s) because %s: %s", len(names), reason, ", ".join(names)
        )


class _ClosingIterable:
    """The app's response iterable, whose ``close()`` then runs the request's tasks."""

    __slots__ = ("_app_close", "_app_iter", "_body_failed", "_closed", "_submit", "_tasks")

    def __init__(
        self, app_iter: Iterable[bytes], tasks: BackgroundTasks, submit: Submit | None
    ) -> None:
        self._app_iter = app_iter
        self._submit = submit
        # A list (most responses) has no close(): skip the failing attribute lookup.
        self._app_close = None if type(app_iter) is list else getattr(app_iter, "close", None)
        self._tasks = tasks
        self._body_failed = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        app_iter = self._app_iter
        if type(app_iter) is list or type(app_iter) is tuple:
            return iter(app_iter)  # cannot raise mid-body: no per-chunk wrapper needed
        return self._chunks(iter(app_iter))

    def _chunks(self, iterator: Iterator[bytes]) -> Iterator[bytes]:
        # A generator costs less per chunk than a Python __next__ method. Not `yield from`:
        # closing this generator would close the app's iterable a second time.
        try:
            for chunk in iterator:  # noqa: UP028 (see above)
                yield chunk
        except GeneratorExit:
            raise  # the server stopped iterating (client gone): not a failed body
        except BaseException:
            self._body_failed = True
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        app_close = self._app_close
        try:
            if app_close is not None:
                app_close()
        finally:
            # A task failure is logged, never raised: a raise from close() makes gunicorn
            # drop the keep-alive connection and the request already sent on it.
            if self._body_failed:
                discard_tasks(self._tasks, "the response body raised")
            elif self._submit is None:
                self._tasks.run_for_request()
            else:
                self._submit(self._tasks)


class _SizedClosingIterable(_ClosingIterable):
    """Keeps ``len()`` of the app's iterable: wsgiref sets Content-Length from it."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._app_iter)  # type: ignore[arg-type]


class _Watched:
    """Says so when a response holding tasks is dropped without ``close()``.

    Only for responses that had tasks queued when the app returned: a ``__del__`` costs a
    call on every request, which the common response (nothing queued) should not pay.
    """

    __slots__ = ()
    _closed: bool
    _tasks: BackgroundTasks

    def __del__(self) -> None:
        if not self._closed and not self._tasks.is_empty():
            logger.warning(
                "a response was garbage-collected without close(): its %d background "
                "task(s) did not run. WSGI servers close responses; Werkzeug's and Flask's "
                "test clients do not: see bgtask.testing.closing_client",
                len(names_of(self._tasks.tasks)),
            )


class _WatchedClosingIterable(_Watched, _ClosingIterable):
    __slots__ = ()


class _WatchedSizedClosingIterable(_Watched, _SizedClosingIterable):
    __slots__ = ()
