"""The Django middleware: a collection per request, run when Django's response is closed.

Every WSGI server calls the response's ``close()`` once the body is written, and so does
``django.test.Client``; Django's ``HttpResponse.close()`` runs the response's resource
closers first, which is where the request's tasks run (or go to the backend). Under the
``wsgi.py`` recipe the WSGI layer already made the collection: the middleware uses that one
and leaves running it to the WSGI layer, so a task never runs twice.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Final

from django.core.signals import got_request_exception
from django.db import close_old_connections
from django.http import FileResponse

from ._backend import CheckingBackend, backend_override
from ._closing import ClosingIterable
from ._current import ENVIRON_KEY, current_tasks
from ._django_atomic import TransactionGate
from ._django_settings import options
from ._request import RequestTasks

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Iterable, Iterator

    from django.http import HttpRequest, HttpResponseBase

    from ._task import BackgroundTask

__all__ = ["OPTIONS_KEY", "BgTaskMiddleware", "ConnectionScope", "discard_on_error"]

#: The environ key marking a request this middleware saw, holding its options.
OPTIONS_KEY: Final = "bgtask.django"


class BgTaskMiddleware:
    """Gives every request a :class:`~bgtask.RequestTasks`, run after the response is sent.

    Put it first in ``MIDDLEWARE``. The collection is ``request.background_tasks``, and
    :func:`~bgtask.get_background_tasks` returns it anywhere in the view's call stack.
    ``settings.BGTASK`` is read and validated when Django builds its middleware chain::

        MIDDLEWARE = ["bgtask.django.BgTaskMiddleware", ...]

        def signup(request):
            request.background_tasks.add_task(send_welcome_email, request.POST["email"])
            return JsonResponse({"status": "Signup successful"})
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.options = options()  # ImproperlyConfigured at startup, not at the first request
        backend = self.options.backend
        self._check = backend.check if isinstance(backend, CheckingBackend) else None

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        environ = request.META
        settings = self.options
        outer: RequestTasks | None = environ.get(ENVIRON_KEY)
        tasks = (
            outer
            if outer is not None  # (not `or`: an empty collection is falsy)
            else RequestTasks(
                environ,
                check=self._check,
                scope=ConnectionScope(),
                task_timeout=settings.task_timeout,
            )
        )
        if tasks.scope is None:  # the wsgi.py recipe's collection: offloaded tasks clean up too
            tasks.scope = ConnectionScope()
        environ[ENVIRON_KEY] = tasks
        environ[OPTIONS_KEY] = settings
        request.background_tasks = tasks
        gate = TransactionGate(tasks) if settings.transactions else None
        token = current_tasks.set(tasks)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # DEBUG_PROPAGATE_EXCEPTIONS: Django let it through
            if outer is None:  # (the WSGI layer discards its own)
                tasks.discard(reason=f"the application raised {type(exc).__name__}")
            raise
        finally:
            current_tasks.reset(token)
        if settings.discard_on_5xx and response.status_code >= 500:
            tasks.discard(seal=False, reason=f"the response's status is {response.status_code}")
        # A test's override (capture_tasks(run=False)) replaces where the tasks go.
        override = backend_override()
        backend = settings.backend if override is None else override
        closing = None if outer is not None else ClosingIterable((), tasks, backend)
        if response.streaming and not response.is_async and not isinstance(response, FileResponse):
            # A body that fails while the server writes it: the tasks go, as under WSGI. (Not
            # a FileResponse: replacing its content would lose the server's sendfile path.)
            response.streaming_content = _watched(response.streaming_content, tasks)
        # Django's own hook: HttpResponse.close() calls its resource closers first (it closes
        # FileResponse's file there), then sends request_finished.
        response._resource_closers.append(_AfterResponse(gate, closing))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """A view raised (``Http404`` and ``PermissionDenied`` too): its tasks go."""
        discard_on_error(request, exception)


def discard_on_error(
    request: HttpRequest, exception: BaseException, *, where: str = "the view"
) -> None:
    """Discard the tasks of ``request`` (if the middleware saw it, and the project wants it).

    Not sealed: ``handler500`` and other error views may still queue tasks of their own.
    """
    settings = request.META.get(OPTIONS_KEY)
    tasks: RequestTasks | None = request.META.get(ENVIRON_KEY)
    if settings is not None and settings.discard_on_error and tasks is not None:
        tasks.discard(seal=False, reason=f"{where} raised {type(exception).__name__}")


def _watched(chunks: Iterable[bytes], tasks: RequestTasks) -> Iterator[bytes]:
    try:
        yield from chunks
    except GeneratorExit:
        raise  # the server stopped iterating (client gone): not a failed body
    except BaseException:
        tasks.discard(reason="the response body raised")
        raise


class _AfterResponse:
    """The response's closer: settle the transactions, then run (unless the WSGI layer will)."""

    __slots__ = ("closing", "gate")

    def __init__(self, gate: TransactionGate | None, closing: ClosingIterable | None) -> None:
        self.gate = gate
        self.closing = closing

    def __call__(self) -> None:
        try:
            if self.gate is not None:
                self.gate.settle()
        finally:
            if self.closing is not None:
                self.closing.close()


class ConnectionScope:
    """Around each task: a task on another thread (the offload pool) closes the database
    connections it opened, as Django does after a request; the request's thread keeps
    Django's own handling (``request_finished``, and the test client's transaction)."""

    __slots__ = ("_thread",)

    def __init__(self) -> None:
        self._thread = threading.get_ident()

    def __call__(self, task: BackgroundTask) -> _Cleanup:
        # Async tasks: the ORM is sync-only there (sync_to_async runs it on other threads).
        return _Cleanup(task, not task.is_async and threading.get_ident() != self._thread)

    def __repr__(self) -> str:
        return "<bgtask.django connection scope>"


class _Cleanup:
    __slots__ = ("elsewhere", "task")

    def __init__(self, task: BackgroundTask, elsewhere: bool) -> None:
        self.task = task
        self.elsewhere = elsewhere

    def __enter__(self) -> contextvars.Context:
        return self.task.context.copy()  # what a task without a scope runs in

    def __exit__(self, *exc_info: object) -> None:
        if self.elsewhere:
            close_old_connections()


def _on_request_exception(sender: Any, request: HttpRequest | None = None, **extra: Any) -> None:
    # Sent for an exception Django answers with a 500, from the view or a middleware below
    # this one; process_exception alone misses the middleware, and a view whose exception
    # another middleware's process_exception handled.
    error = sys.exc_info()[1]
    if request is not None and error is not None:
        # The view's own exception was handled by process_exception: this is a middleware's.
        discard_on_error(request, error, where="the request")


got_request_exception.connect(_on_request_exception, weak=False)


BgTaskMiddleware.__module__ = "bgtask.django"  # its public path, in reprs and tracebacks
