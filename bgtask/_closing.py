"""The response iterable whose ``close()`` runs the request's tasks (PEP 3333).

A WSGI server calls ``close()`` once it has written the whole body (or the chunked
terminator): the tasks then run inline, or go to the backend. ``close()`` never raises a
task's exception (a raise there makes gunicorn drop the keep-alive connection and the
request already sent on it) and runs the tasks once, however often it is called.
"""

from __future__ import annotations

import collections.abc
from typing import TYPE_CHECKING, Final

from ._clock import now

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed.wsgi import WSGIEnvironment

    from ._backend import Backend
    from ._request import RequestTasks

__all__ = ["UNCLOSED", "ClosingIterable", "SizedClosingIterable", "run_after_close"]

#: Why the tasks of a response dropped without close() did not run.
UNCLOSED: Final = (
    "the response was garbage-collected without close(). WSGI servers close responses; "
    "Werkzeug's and Flask's test clients do not: see bgtask.testing.closing_client"
)


def run_after_close(
    app_iter: Iterable[bytes],
    tasks: RequestTasks,
    environ: WSGIEnvironment,
    backend: Backend | None,
) -> Iterable[bytes]:
    """``app_iter``, made to run ``tasks`` in its ``close()``.

    An instance of the server's ``wsgi.file_wrapper`` is returned itself, its ``close``
    chained, so the server keeps its sendfile path; anything else is wrapped, keeping its
    ``len()`` (wsgiref sets Content-Length from it).
    """
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type) and isinstance(app_iter, file_wrapper):
        closing = ClosingIterable(app_iter, tasks, backend)
        try:
            app_iter.close = closing.close  # type: ignore[attr-defined]
        except AttributeError:
            return closing  # a wrapper with __slots__: wrapping it is all we can do
        return app_iter
    if isinstance(app_iter, collections.abc.Sized):
        return SizedClosingIterable(app_iter, tasks, backend)
    return ClosingIterable(app_iter, tasks, backend)


class ClosingIterable:
    """The app's response iterable, whose ``close()`` then runs the request's tasks."""

    __slots__ = ("_app_close", "_app_iter", "_backend", "_body_failed", "_closed", "_tasks")

    def __init__(
        self, app_iter: Iterable[bytes], tasks: RequestTasks, backend: Backend | None
    ) -> None:
        self._app_iter = app_iter
        # Taken now: a file wrapper's close is replaced by ours right after this.
        self._app_close = getattr(app_iter, "close", None)
        self._tasks = tasks
        self._backend = backend
        self._body_failed = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        app_iter = self._app_iter
        if isinstance(app_iter, (list, tuple)):
            return iter(app_iter)  # cannot raise mid-body: no per-chunk wrapper needed
        return self._chunks(iter(app_iter))

    def _chunks(self, iterator: Iterator[bytes]) -> Iterator[bytes]:
        # Not `yield from`: closing this generator would close the app's iterable twice.
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
        tasks = self._tasks
        tasks.sent = now()
        try:
            if self._app_close is not None:
                self._app_close()
        finally:
            if self._body_failed:
                tasks.discard(reason="the response body raised")
            elif self._backend is None:
                tasks.run_for_request()
            else:
                self._backend.submit(tasks)

    def __del__(self) -> None:
        # Every response, not only those with tasks when the app returned: a streaming
        # body may queue tasks while it is iterated.
        if not self._closed and not self._tasks.is_empty():
            self._tasks.discard(reason=UNCLOSED)


class SizedClosingIterable(ClosingIterable):
    """Keeps ``len()`` of the app's iterable: wsgiref sets Content-Length from it."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._app_iter)  # type: ignore[arg-type]
