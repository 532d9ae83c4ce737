"""The collection a request owns: built by the WSGI layer, run once after the response.

Besides what every collection does, it is sealed once run, discarded or taken (a late
``add_task`` from a thread that outlived the request raises instead of losing the task),
keeps the tasks attached by integrations (the response's ``background``, a route's fixed
tasks) in stages after the queued ones, checks each task for its backend as it is queued,
and tells its own listeners (the middleware's) besides the process's.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

from . import _lifecycle
from ._collection import BackgroundTasks, check_item, tasks_of
from ._inline import run_inline
from ._native import allocate_lock
from ._policy import Run, may_run
from ._task import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._collection import Item
    from ._events import Listener, Mode
    from ._policy import Scope

__all__ = ["REQUEST_ID_KEY", "RESPONSE_STAGE", "ROUTE_STAGE", "Check", "RequestTasks", "header_key"]

#: Where the WSGI environ has the ``X-Request-ID`` header.
REQUEST_ID_KEY: Final = "HTTP_X_REQUEST_ID"

#: Where attached tasks run, after everything the request queued: first the response's
#: ``background``, then a route decorator's fixed tasks.
RESPONSE_STAGE: Final = 1
ROUTE_STAGE: Final = 2

#: A backend's check of a queued task: raises TypeError for one it could not run.
Check: TypeAlias = "Callable[[BackgroundTask], None]"


class RequestTasks(BackgroundTasks):
    """A request's :class:`BackgroundTasks`: ``environ["bgtask.tasks"]``.

    ``check`` is called with every task queued or attached (``TypeError`` for one the
    backend could not run), ``scope`` is the runner's hook around each task, ``listeners``
    hear this request's events besides the process's. ``request_id_key`` is the environ key
    of the header that carries the request's id (``HTTP_X_REQUEST_ID``).

    >>> tasks = RequestTasks({"PATH_INFO": "/signup"})
    >>> _ = tasks.add_task(print, "welcome")
    >>> tasks.discard()
    [<BackgroundTask builtins.print>]
    """

    __slots__ = (
        "_check",
        "_lock",
        "_request_id",
        "_sealed",
        "_tail",
        "environ",
        "listeners",
        "request_id_key",
        "scope",
        "sent",
        "task_timeout",
    )

    releases_tasks: ClassVar[bool] = True

    def __init__(
        self,
        environ: Mapping[str, Any],
        *,
        check: Check | None = None,
        scope: Scope | None = None,
        listeners: tuple[Listener, ...] = (),
        request_id_key: str | None = REQUEST_ID_KEY,
        task_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.environ = environ
        self.request_id_key = request_id_key
        self._request_id: str | None = None
        #: The deadline of its tasks that have none of their own (the middleware's).
        self.task_timeout = task_timeout
        self.scope = scope
        self._check = check
        #: Listeners of this request's events besides the process's (the middleware's).
        self.listeners = listeners
        # Native: pool and loop threads take it too (a task queueing on its own request).
        self._lock: Any = allocate_lock()
        self._sealed = False
        self._tail: list[tuple[int, Item]] = []
        #: When the response was sent (monotonic), for the wait before each task.
        self.sent = 0.0

    @property
    def request_id(self) -> str:
        """The request's id: its request id header if it has a plausible one, else one
        generated (once, when first asked: requests whose events nobody reads pay nothing).
        """
        request_id = self._request_id
        if request_id is None:
            given = self.environ.get(self.request_id_key) if self.request_id_key else None
            # From outside the process and written into logs: a bounded, printable token.
            if isinstance(given, str) and 0 < len(given) <= 200 and given.isprintable():
                request_id = given
            else:
                request_id = uuid.uuid4().hex
            self._request_id = request_id
        return request_id

    @property
    def tasks(self) -> tuple[Item, ...]:
        """The tasks in the order they run: queued, then the response's, then the route's."""
        with self._lock:
            return (*self._items, *self._staged())

    def attach(self, item: Item, *, stage: int) -> None:
        """Run ``item`` after everything queued, in ``stage`` order (integrations' hook)."""
        check_item(item)
        self._check_all(tasks_of((item,)))
        with self._lock:
            self._refuse_if_sealed()
            self._tail.append((stage, item))
        for task in tasks_of((item,)):
            _lifecycle.queued(task, self)

    def discard(self, *, seal: bool = True, reason: str = "discard() was called") -> list[Item]:
        """Drop everything pending, announcing each task discarded; return what it was.

        With ``seal=False`` the collection stays open: an error handler that runs after a
        failed view may still queue tasks of its own.
        """
        with self._lock:
            self._sealed = self._sealed or seal
            items = [*self._items, *self._staged()]
            self._items.clear()
            self._tail.clear()
        for task in tasks_of(items):
            _lifecycle.discarded(task, self, reason)
        return items

    def discard_tasks(self, tasks: Iterable[BackgroundTask], reason: str) -> list[BackgroundTask]:
        """Drop these pending tasks only (a rolled-back transaction's), announcing each
        discarded; return those that were still pending. The others keep their order."""
        dropped = {id(task) for task in tasks}
        with self._lock:
            found = [
                item for item in self._items
                if isinstance(item, BackgroundTask) and id(item) in dropped
            ]  # fmt: skip
            self._items[:] = [item for item in self._items if id(item) not in dropped]
        for task in found:
            _lifecycle.discarded(task, self, reason)
        return found

    def take(self) -> RequestTasks:
        """Seal this collection and move what it would run into a new one, in run order.

        For a backend that sends the tasks elsewhere (RQ, Celery): the new collection keeps
        the environ, the scope and the policy, so it can still run here if sending fails.
        """
        batch = RequestTasks(
            self.environ,
            scope=self.scope,
            listeners=self.listeners,
            task_timeout=self.task_timeout,
            request_id_key=self.request_id_key,
        )
        batch.continue_on_error = self.continue_on_error
        batch._request_id = self._request_id
        with self._lock:
            self._sealed = True
            items = [*self._items, *self._staged()]
            self._items.clear()
            self._tail.clear()
        # What would not run here is not sent either: a task discarded while it waited
        # for its transaction, or whose gate discards it now.
        batch._items = [
            item for item in items if not isinstance(item, BackgroundTask) or may_run(item, self)
        ]
        batch.sent = self.sent
        return batch

    def seal_if_empty(self) -> bool:
        """Seal a collection with nothing to run; True if it was sealed (the common case:
        the WSGI layer then skips the run entirely)."""
        with self._lock:
            if self._items or self._tail:
                return False
            self._sealed = True
            return True

    def is_empty(self) -> bool:
        """Whether nothing is queued or attached."""
        return not self._items and not self._tail

    def run_for_request(self, mode: Mode = "inline") -> None:
        """Run the tasks here, in this thread, under the policy, and seal the collection.

        What ``close()`` does inline, and a backend's last resort. Never raises an
        ``Exception``; only what tells the process to stop.
        """
        if not self.seal_if_empty():
            # moves_retries: a retry that waits leaves close() (and the worker) for the pool.
            run_inline(Run(self, mode, self.scope, moves_retries=True))

    # -- what the runner reads -----------------------------------------------------------

    def _add(self, item: Item) -> None:
        if self._check is not None:
            self._check_all(tasks_of((item,)))
        with self._lock:
            self._refuse_if_sealed()
            self._refuse_past_limit(item)
            self._items.append(item)
        if isinstance(item, BackgroundTask):  # told outside the lock: a listener may queue
            _lifecycle.queued(item, self)

    def _item(self, index: int) -> Item | None:
        # At the end of the queued tasks: move the staged ones in, or seal.
        with self._lock:
            items = self._items
            if index >= len(items) and self._tail:
                items.extend(self._staged())
                self._tail.clear()
            if index < len(items):
                return items[index]
            self._sealed = True
            return None

    def _items_from(self, index: int) -> list[Item]:
        with self._lock:
            return [*self._items[index:], *self._staged()]

    def _check_all(self, tasks: Iterable[BackgroundTask]) -> None:
        if self._check is not None:
            for task in tasks:
                self._check(task)

    def _staged(self) -> list[Item]:
        return [item for _, item in sorted(self._tail, key=_stage)]

    def _refuse_if_sealed(self) -> None:
        if self._sealed:
            msg = (
                "this request's background tasks have already run (or were discarded); "
                "queue tasks before the response is closed"
            )
            raise RuntimeError(msg)


def header_key(header: str | None) -> str | None:
    """The environ key of an HTTP request header: ``X-Request-ID`` is ``HTTP_X_REQUEST_ID``.

    >>> header_key("X-Request-ID")
    'HTTP_X_REQUEST_ID'
    """
    return None if header is None else "HTTP_" + header.upper().replace("-", "_")


def _stage(entry: tuple[int, Item]) -> int:
    return entry[0]
