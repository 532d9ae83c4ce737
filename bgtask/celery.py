"""Celery backend: each request's tasks become one Celery task message, run by workers.

Install with ``pip install 'wsgi-bgtask[celery]'``. In the module that defines your Celery
app (``yourapp/celery.py``, say)::

    from celery import Celery
    from bgtask.celery import CeleryBackend

    celery_app = Celery("yourapp", broker="amqp://guest:guest@localhost//")
    backend = CeleryBackend(celery_app, tasks=[send_welcome_email])

then ``BgTask(app, backend=backend)`` in the web app and ``celery -A yourapp.celery worker``
for the workers. Building the backend registers bgtask's one task,
``bgtask.run_collection``, on every Celery app of the process, and declares the functions
its workers may run: ``tasks=[...]`` or the ``@backend.task`` decorator. Declaring is
required: a worker runs only functions declared on its app, looked up by name, never
imported from a message. No result backend is needed: the task ignores its result.

The task runs the request's collection with the same order and error policy as inline; a
failed task fails the Celery task, and with ``retry=RetryPolicy(...)`` it calls
``Task.retry`` with the policy's countdown, resuming at the first task that has not
succeeded (the message of the retry carries that progress).
"""

from __future__ import annotations

import logging
import math
import select
import socket
import sys
from typing import TYPE_CHECKING, Any, Final

from ._allowlist import AllowList
from ._celeryjob import ALLOW_LISTS, run_collection
from ._collection import tasks_of
from ._extras import require
from ._options import JOB_MARGIN, time_budget
from ._payload import describe_batch, encode
from ._remote import RemoteBackend
from ._retry import RetryPolicy
from ._serializable import Serializer

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from celery import Celery

    from ._backend import Backend
    from ._events import Mode
    from ._request import RequestTasks

__all__ = ["TASK_NAME", "CeleryBackend", "RetryPolicy"]

# Imported lazily (importing this module stays cheap); checked now, naming the extra.
require(__name__, "celery", "celery")

logger: Final = logging.getLogger("bgtask")

#: The Celery task every request's collection is sent to (route it by this name).
TASK_NAME: Final = "bgtask.run_collection"

_registered = False


class CeleryBackend(RemoteBackend):
    """Sends each request's tasks to the Celery ``app``'s broker as one task, after the response.

    ``tasks`` (or the ``@backend.task`` decorator) declares the functions workers may run:
    a worker runs a function only if the backends built on its app declared it. At
    ``add_task`` each task is checked: declared, importable by name, arguments the app's
    ``task_serializer`` takes (``json`` by default, through kombu); otherwise
    ``TypeError`` in the request. ``queue`` names the queue to send to (default: Celery's
    routing). ``retry`` maps onto ``Task.retry``: ``max_retries`` and a ``countdown`` per
    retry.

    ``close()`` waits at most ``handoff_timeout`` seconds for the broker, whatever
    Celery's own settings. If the connection could not be established, nothing was sent:
    the tasks run in the web process, inline or on ``fallback``, after a WARNING naming
    them. If the publish itself failed or timed out, the message may have reached the
    broker, and the tasks do not run here (an ERROR names them): at most once.

    >>> from celery import Celery
    >>> backend = CeleryBackend(Celery(broker="memory://"), queue="bgtask")
    >>> @backend.task
    ... def send_welcome_email(to: str) -> None: ...
    >>> backend
    <CeleryBackend queue 'bgtask'>
    """

    __slots__ = ("app", "queue")

    declare_hint = "CeleryBackend(app, tasks=[...])"
    mode: Mode = "celery"

    def __init__(
        self,
        app: Celery,
        *,
        tasks: Iterable[Callable[..., object]] | None = None,
        retry: RetryPolicy | None = None,
        fallback: Backend | None = None,
        queue: str | None = None,
        handoff_timeout: float = 0.5,
    ) -> None:
        import celery

        if not isinstance(app, celery.Celery):
            msg = f"CeleryBackend needs a celery.Celery app, got {type(app).__name__}"
            raise TypeError(msg)
        self.app = app
        self.queue = queue
        super().__init__(
            retry=retry, fallback=fallback, handoff_timeout=handoff_timeout, tasks=tasks
        )
        self.allow_list(create=True)  # workers of this app now refuse what is not declared
        _register_task()

    def __repr__(self) -> str:
        return f"<CeleryBackend queue {self.queue!r}>"

    def destination(self) -> str:
        queue = "its default queue" if self.queue is None else f"queue {self.queue!r}"
        return f"Celery app {self.app.main or '__main__'!r}, {queue}"

    def serializer(self) -> Serializer:
        from kombu.serialization import dumps

        serializer: str = self.app.conf.task_serializer
        return Serializer(
            f"Celery's task_serializer ({serializer})",
            lambda data: dumps(data, serializer=serializer),  # type: ignore[no-untyped-call]
            pickles=serializer == "pickle",
        )

    def allow_list(self, create: bool = False) -> AllowList:
        # Always one: for Celery the allow-list is not optional.
        allowed = ALLOW_LISTS.get(self.app)
        if allowed is None:
            allowed = ALLOW_LISTS.setdefault(self.app, AllowList())
        return allowed

    def handoff(self, batch: RequestTasks, job_id: str) -> Generator[None, None, None]:
        payload = encode(batch, self.retry, declared=True)
        description = describe_batch(batch)
        policy = dict(self.app.conf.task_publish_retry_policy or {})
        # Every task with a deadline: the job's own limits, which Celery enforces (the soft
        # one raises in the task, the hard one replaces the pool's child).
        budget = time_budget([task.func for task in tasks_of(batch.tasks)])
        limits = (
            {}
            if budget is None
            else {
                "soft_time_limit": math.ceil(budget) + JOB_MARGIN,
                "time_limit": math.ceil(budget) + 2 * JOB_MARGIN,
            }
        )
        with self.app.producer_or_acquire() as producer:
            connection = producer.connection
            if _closed_by_broker(connection):
                # A pooled connection the broker closed (a restart): a publish on it would
                # fail after writing, undecidable. Reconnect now, while nothing is sent.
                connection.collect()
                producer.revive(connection)
            # Connecting sends no task: retrying it is safe. Opening the channel is a
            # round trip (a PING on a redis:// broker), so a silent broker hangs here.
            connection.ensure_connection(**_connect_policy(policy))
            producer.channel  # noqa: B018
            yield
            self.app.send_task(
                TASK_NAME,
                args=[payload],
                task_id=job_id,
                producer=producer,
                queue=self.queue,
                ignore_result=True,
                # A publish retried after it reached the broker would queue it twice.
                retry=False,
                # Celery's default shows the arguments (emails, tokens) in logs and events;
                # and its own name (bgtask.run_collection) for every job: name the tasks.
                argsrepr=f"({description!r},)",
                shadow=description,
                kwargsrepr="{}",
                **limits,
            )


def _closed_by_broker(connection: Any) -> bool:
    """Whether an AMQP connection has something to read before we sent anything: the
    broker's close, or its end of file. Nothing else arrives unasked on a producer's."""
    if not connection.connected:
        return False
    sock = getattr(connection.connection, "sock", None)
    if not isinstance(sock, socket.socket):
        return False  # another transport: its client checks its own connections
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed already
        return True


def _connect_policy(policy: dict[str, Any]) -> dict[str, Any]:
    known = ("max_retries", "interval_start", "interval_step", "interval_max")
    return {key: policy[key] for key in known if key in policy}


def _register_task() -> None:
    """Register ``bgtask.run_collection`` on every Celery app, present and future."""
    global _registered
    if _registered:
        return
    from celery import shared_task

    shared_task(name=TASK_NAME, bind=True, ignore_result=True)(run_collection)
    _registered = True


if "celery" in sys.modules:
    # Imported by a Celery process (``include=["bgtask.celery"]`` in a worker): register now.
    # Otherwise building a CeleryBackend does, so importing this module stays cheap.
    _register_task()
