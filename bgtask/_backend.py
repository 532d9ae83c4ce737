"""Where a request's tasks go once its response was sent: the backend protocols.

Inline (no backend) runs them in ``close()``; an :class:`~bgtask.OffloadPool` hands them to
its threads; the RQ and Celery backends send them to workers. A backend that can tell, as
each task is queued, that it could not run it (an RQ worker cannot import a lambda) also
implements :class:`CheckingBackend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._request import RequestTasks
    from ._task import BackgroundTask

__all__ = ["Backend", "CheckingBackend", "backend_override", "override_backend"]


@runtime_checkable
class Backend(Protocol):
    """Runs or hands off a request's tasks, in the response's ``close()``.

    ``submit`` must not raise and must lose nothing: a backend that cannot hand the tasks
    off runs them itself. The collection offers ``run_for_request()`` (run them here, in
    this thread, under their policy) and ``take()`` (seal it and move its tasks into a new
    collection, to send elsewhere or to run later).

    >>> from bgtask import BackgroundTaskMiddleware
    >>> class Inline:
    ...     def submit(self, tasks):
    ...         tasks.run_for_request()
    >>> app = BackgroundTaskMiddleware(lambda environ, start_response: [], backend=Inline())
    """

    def submit(self, tasks: RequestTasks, /) -> None:
        """Run or hand off ``tasks``; must not raise, and must lose nothing."""


@runtime_checkable
class CheckingBackend(Backend, Protocol):
    """A backend that checks each task as it is queued, in the request.

    >>> class NoLambdas:
    ...     def submit(self, tasks):
    ...         tasks.run_for_request()
    ...     def check(self, task):
    ...         if task.name.endswith("<lambda>"):
    ...             raise TypeError(f"cannot queue {task.name}: no lambdas here")
    >>> isinstance(NoLambdas(), CheckingBackend)
    True
    """

    def check(self, task: BackgroundTask, /) -> None:
        """Raise ``TypeError`` (in the request that queued it) for a task this backend
        could not run."""


_overrides: list[Backend] = []


def backend_override() -> Backend | None:
    """The backend requests starting now use instead of their own (a test's), if any."""
    return _overrides[-1] if _overrides else None


def override_backend(backend: Backend | None) -> None:
    """Push ``backend`` as the override (None pops the last one): ``bgtask.testing``."""
    if backend is None:
        _overrides.pop()
    else:
        _overrides.append(backend)
