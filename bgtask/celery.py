"""Celery backend: each request's tasks become one Celery task message, run by workers.

Install with ``pip install 'wsgi-bgtask[celery]'``. In the module that defines your Celery
app (``yourapp/celery.py``, say)::

    from celery import Celery
    from bgtask.celery import CeleryBackend

    celery_app = Celery("yourapp", broker="amqp://guest:guest@localhost//")
    backend = CeleryBackend(celery_app)

then ``BgTask(app, backend=backend)`` in the web app and ``celery -A yourapp.celery worker``
for the workers. Building the backend registers bgtask's one task,
``bgtask.run_collection``, on every Celery app of the process; a worker that does not import
that module gets it with ``Celery(..., include=["bgtask.celery"])``. No result backend is
needed: the task ignores its result.

The task runs the request's collection with the same order and error policy as inline; a
failed task fails the Celery task, and with ``retry=RetryPolicy(...)`` it calls
``Task.retry`` with the policy's countdown, resuming at the first task that has not
succeeded (the message of the retry carries that progress).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Final

from ._job import TasksFailed
from ._job import run_payload as _run_payload
from ._remote import RemoteBackend, RetryPolicy, describe_batch, encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery import Celery

    from ._backend import Backend
    from ._events import Mode
    from ._request import RequestTasks

__all__ = ["TASK_NAME", "CeleryBackend", "RetryPolicy"]

logger: Final = logging.getLogger("bgtask")

#: The Celery task every request's collection is sent to (route it by this name).
TASK_NAME: Final = "bgtask.run_collection"

_registered = False


class CeleryBackend(RemoteBackend):
    """Sends each request's tasks to the Celery ``app``'s broker as one task, after the response.

    At ``add_task`` each task is checked: its function must be importable by name in a
    worker (no lambda, no function defined inside a function, no bound method) and its
    arguments must pass the app's ``task_serializer`` (``json`` by default, through
    kombu); otherwise ``TypeError`` in the request. ``queue`` names the queue to send to
    (default: Celery's routing). ``retry`` maps onto ``Task.retry``: ``max_retries`` and a
    ``countdown`` per retry.

    If the broker cannot be reached in ``close()``, nothing is lost: the tasks run in the
    web process, inline or on ``fallback`` (an :class:`~bgtask.OffloadPool`, say), with a
    WARNING naming them. How long the attempt may take is Celery's
    ``broker_connection_timeout`` and ``task_publish_retry_policy``.

    >>> from celery import Celery
    >>> backend = CeleryBackend(Celery(broker="memory://"), queue="bgtask")
    >>> backend
    <CeleryBackend queue 'bgtask'>
    """

    __slots__ = ("app", "queue")

    mode: Mode = "celery"

    def __init__(
        self,
        app: Celery,
        *,
        retry: RetryPolicy | None = None,
        fallback: Backend | None = None,
        queue: str | None = None,
    ) -> None:
        import celery

        if not isinstance(app, celery.Celery):
            msg = f"CeleryBackend needs a celery.Celery app, got {type(app).__name__}"
            raise TypeError(msg)
        super().__init__(retry=retry, fallback=fallback)
        self.app = app
        self.queue = queue
        _register_task()

    def __repr__(self) -> str:
        return f"<CeleryBackend queue {self.queue!r}>"

    def destination(self) -> str:
        queue = "its default queue" if self.queue is None else f"queue {self.queue!r}"
        return f"Celery app {self.app.main or '__main__'!r}, {queue}"

    def serializer(self) -> tuple[str, Callable[[Any], object]]:
        from kombu.serialization import dumps

        serializer: str = self.app.conf.task_serializer
        return (
            f"Celery's task_serializer ({serializer})",
            lambda data: dumps(data, serializer=serializer),  # type: ignore[no-untyped-call]
        )

    def send(self, batch: RequestTasks) -> None:
        description = describe_batch(batch)
        self.app.send_task(
            TASK_NAME,
            args=[encode(batch, self.retry)],
            queue=self.queue,
            ignore_result=True,
            # Celery's default shows the arguments (emails, tokens) in logs and events.
            argsrepr=f"({description!r},)",
            kwargsrepr="{}",
        )


def _run_collection(task: Any, payload: dict[str, Any]) -> None:
    """The Celery task: run one request's collection, retrying under its policy."""
    done = set(payload.get("done", ()))
    not_done = _run_payload(payload, done, mode="celery")
    if not not_done:
        return
    failure = TasksFailed.naming(not_done)
    delays: list[float] = payload.get("retry_delays", [])
    retries: int = task.request.retries
    if retries < len(delays):
        description = f"bgtask: {', '.join(not_done)}"
        raise task.retry(
            args=[{**payload, "done": sorted(done)}],
            countdown=delays[retries],
            max_retries=len(delays),
            exc=failure,
            argsrepr=f"({description!r},)",
            kwargsrepr="{}",
        )
    raise failure


def _register_task() -> None:
    """Register ``bgtask.run_collection`` on every Celery app, present and future."""
    global _registered
    if _registered:
        return
    from celery import shared_task

    shared_task(name=TASK_NAME, bind=True, ignore_result=True)(_run_collection)
    _registered = True


if "celery" in sys.modules:
    # Imported by a Celery process (``include=["bgtask.celery"]`` in a worker): register now.
    # Otherwise building a CeleryBackend does, so importing this module stays cheap.
    _register_task()
