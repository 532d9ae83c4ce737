"""RQ backend: each request's tasks become one RQ job, run by ``rq worker`` processes.

Install with ``pip install 'wsgi-bgtask[rq]'``::

    from redis import Redis
    from rq import Queue
    from bgtask.flask import BgTask
    from bgtask.rq import RQBackend

    BgTask(app, backend=RQBackend(Queue("bgtask", connection=Redis())))

then run workers where your code is importable: ``rq worker bgtask``. The job runs the
request's collection with the same order and error policy as inline; a failed task fails
the job (it shows in RQ's failed job registry), and with ``retry=RetryPolicy(...)`` RQ
retries it, resuming at the first task that has not succeeded (progress is kept in
``job.meta["bgtask_done"]``). ``rq`` is imported only when a backend is built.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Final

from ._job import TasksFailed
from ._job import run_payload as _run_payload
from ._remote import RemoteBackend, RetryPolicy, describe_batch, encode

if TYPE_CHECKING:
    from collections.abc import Callable

    from rq import Queue, Retry

    from ._backend import Backend
    from ._request import RequestTasks

__all__ = ["RQBackend", "RetryPolicy", "run_job"]

logger: Final = logging.getLogger("bgtask")

#: What every job calls on the worker, by import path (the web process never calls it).
JOB_FUNCTION: Final = "bgtask.rq.run_job"
#: Where a job keeps the indexes of its tasks that succeeded, for a retry to skip them.
PROGRESS_KEY: Final = "bgtask_done"


class RQBackend(RemoteBackend):
    """Hands each request's tasks to an RQ ``queue`` as one job, after the response.

    At ``add_task`` each task is checked: its function must be importable by name in a
    worker (no lambda, no function defined inside a function, no bound method) and its
    arguments must pass the queue's serializer (pickle by default); otherwise ``TypeError``
    in the request. ``retry`` becomes the job's ``rq.Retry`` (backoff rounded up to whole
    seconds; a backoff above zero needs a worker started with ``--with-scheduler``).

    If Redis cannot be reached in ``close()``, nothing is lost: the tasks run in the web
    process, inline or on ``fallback`` (an :class:`~bgtask.OffloadPool`, say), with a
    WARNING naming them. How long ``close()`` tries first is the Redis client's: set
    ``socket_connect_timeout``, and note that ``Redis(...)`` retries a refused connection
    (about 4 s with redis-py 8) where ``Redis.from_url(...)`` does not.

    >>> from redis import Redis
    >>> from rq import Queue
    >>> backend = RQBackend(Queue("bgtask", connection=Redis()), retry=RetryPolicy(max=3))
    >>> backend
    <RQBackend queue 'bgtask'>
    """

    __slots__ = ("_rq_retry", "queue")

    def __init__(
        self, queue: Queue, *, retry: RetryPolicy | None = None, fallback: Backend | None = None
    ) -> None:
        import rq

        if not isinstance(queue, rq.Queue):
            msg = f"RQBackend needs an rq.Queue, got {type(queue).__name__}"
            raise TypeError(msg)
        super().__init__(retry=retry, fallback=fallback)
        self.queue = queue
        self._rq_retry: Retry | None = None
        if retry is not None:
            # One interval per retry: RQ repeats the *first* one when the list is shorter.
            intervals = [math.ceil(delay) for delay in retry.delays()]
            self._rq_retry = rq.Retry(max=retry.max, interval=intervals)

    def __repr__(self) -> str:
        return f"<RQBackend queue {self.queue.name!r}>"

    def destination(self) -> str:
        return f"RQ queue {self.queue.name!r}"

    def serializer(self) -> tuple[str, Callable[[Any], object]]:
        serializer = self.queue.serializer
        return _serializer_name(serializer), serializer.dumps

    def send(self, batch: RequestTasks) -> None:
        self.queue.enqueue_call(
            JOB_FUNCTION,
            args=(encode(batch),),
            retry=self._rq_retry,
            description=describe_batch(batch),  # RQ's default shows the arguments
        )


def run_job(payload: dict[str, Any]) -> None:
    """What an RQ worker runs for one request's collection (queued by :class:`RQBackend`).

    Raises ``TasksFailed`` when a task failed, so RQ marks the job failed and applies its
    retries; each task that succeeded is recorded in ``job.meta`` and skipped by a retry.

    >>> from bgtask import BackgroundTasks
    >>> run_job(encode(BackgroundTasks()))
    """
    from rq import get_current_job

    job = get_current_job()
    done: set[int] = set()
    if job is not None:
        done.update(job.meta.get(PROGRESS_KEY, ()))

    def record_progress() -> None:
        if job is None:
            return
        job.meta[PROGRESS_KEY] = sorted(done)
        try:
            job.save_meta()  # type: ignore[no-untyped-call]
        except Exception:
            # The task did succeed: never turn that into a failure.
            logger.warning(
                "bgtask: could not record the progress of RQ job %s; a retry of it may run "
                "tasks that already succeeded",
                job.id,
                exc_info=True,
            )

    not_done = _run_payload(payload, done, record_progress, mode="rq")
    if not_done:
        raise TasksFailed.naming(not_done)


def _serializer_name(serializer: object) -> str:
    name = getattr(serializer, "__name__", None) or type(serializer).__name__
    known = {"DefaultSerializer": "pickle", "JSONSerializer": "JSON"}
    return f"RQ's serializer ({known.get(name, name)})"
