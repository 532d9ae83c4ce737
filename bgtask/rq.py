"""RQ backend: each request's tasks become one RQ job, run by ``rq worker`` processes.

Install with ``pip install 'wsgi-bgtask[rq]'``. In a module that web and workers import
(``yourapp/bgtask_rq.py``, say)::

    from redis import Redis
    from rq import Queue
    from bgtask.rq import RQBackend

    backend = RQBackend(Queue("bgtask", connection=Redis()), tasks=[send_welcome_email])

then ``BgTask(app, backend=backend)`` in the web app and ``rq worker -c yourapp.bgtask_rq
bgtask`` for the workers: ``-c`` imports that module, so the worker knows the declared
tasks and runs nothing else. The job runs the request's collection with the same order and
error policy as inline; a failed task fails the job (it shows in RQ's failed job registry),
and with ``retry=RetryPolicy(...)`` RQ retries it, resuming at the first task that has not
succeeded (progress is kept in ``job.meta["bgtask_done"]``). ``rq`` is imported only when
a backend is built.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Final

from ._allowlist import AllowList
from ._claim import CLAIM_WINDOW, claim_for_web
from ._collection import tasks_of
from ._extras import require
from ._fallback import run_here
from ._handoff import SENT, HandoffTimeout
from ._options import JOB_MARGIN, time_budget
from ._payload import describe_batch, encode
from ._remote import RemoteBackend
from ._retry import RetryPolicy
from ._rqconnect import connect, is_duplicate
from ._rqjob import ALLOW_LISTS
from ._rqjob import run_job as run_job
from ._serializable import Serializer

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from rq import Queue, Retry

    from ._backend import Backend
    from ._request import RequestTasks

__all__ = ["RQBackend", "RetryPolicy", "run_job"]

# Imported lazily (importing this module stays cheap); checked now, naming the extra.
require(__name__, "rq", "rq")

logger: Final = logging.getLogger("bgtask")

#: What every job calls on the worker, by import path (the web process never calls it).
JOB_FUNCTION: Final = "bgtask.rq.run_job"


class RQBackend(RemoteBackend):
    """Hands each request's tasks to an RQ ``queue`` as one job, after the response.

    ``tasks`` (or the ``@backend.task`` decorator) declares the functions workers may
    run; a worker that imports the module building this backend then runs nothing else
    from this queue. Without it, a worker imports any function a job names, as RQ itself
    does. At ``add_task`` each task is checked: importable by name in a worker, declared
    (when an allow-list is in use), arguments the queue's serializer takes (pickle by
    default, with no class or function from ``__main__``); otherwise ``TypeError`` in
    the request. ``retry`` becomes the job's ``rq.Retry`` (backoff rounded up to whole
    seconds; a backoff above zero needs a worker started with ``--with-scheduler``).

    ``close()`` waits at most ``handoff_timeout`` seconds for Redis, whatever the client's
    own timeouts. If nothing was sent, the tasks run in the web process, inline or on
    ``fallback``, after a WARNING naming them. If the enqueue was sent but not answered,
    the job id is claimed in Redis so that the tasks run exactly once, here or on a worker
    (see ``bgtask._claim``); with no answer to that either, they do not run here. That
    claim is answered within 10 s of the start of the hand-off or not at all, so keep
    ``handoff_timeout`` well under 5 s (the claim waits up to ``handoff_timeout`` too).

    >>> from redis import Redis
    >>> from rq import Queue
    >>> backend = RQBackend(Queue("bgtask", connection=Redis()), retry=RetryPolicy(max=3))
    >>> backend
    <RQBackend queue 'bgtask'>
    """

    __slots__ = ("_enqueue_options", "_rq_retry", "queue")

    declare_hint = "RQBackend(queue, tasks=[...])"

    def __init__(
        self,
        queue: Queue,
        *,
        tasks: Iterable[Callable[..., object]] | None = None,
        retry: RetryPolicy | None = None,
        fallback: Backend | None = None,
        handoff_timeout: float = 0.5,
    ) -> None:
        import rq

        if not isinstance(queue, rq.Queue):
            msg = f"RQBackend needs an rq.Queue, got {type(queue).__name__}"
            raise TypeError(msg)
        self.queue = queue
        super().__init__(
            retry=retry, fallback=fallback, handoff_timeout=handoff_timeout, tasks=tasks
        )
        self._rq_retry: Retry | None = None
        if retry is not None:
            # One interval per retry: RQ repeats the *first* one when the list is shorter.
            intervals = [math.ceil(delay) for delay in retry.delays()]
            self._rq_retry = rq.Retry(max=retry.max, interval=intervals)
        # unique=True stores the job only if its id is new, in one script: when redis-py
        # retries an enqueue whose answer was lost, the job is not queued twice.
        unique = "unique" in inspect.signature(rq.Queue.enqueue_job).parameters
        self._enqueue_options: dict[str, Any] = {"unique": True} if unique else {}

    def __repr__(self) -> str:
        return f"<RQBackend queue {self.queue.name!r}>"

    def destination(self) -> str:
        return f"RQ queue {self.queue.name!r}"

    def serializer(self) -> Serializer:
        import pickle

        serializer = self.queue.serializer
        dumps = serializer.dumps
        pickles = getattr(dumps, "func", dumps) is pickle.dumps or serializer.loads is pickle.loads
        return Serializer(_serializer_name(serializer), dumps, pickles=pickles)

    def allow_list(self, create: bool = False) -> AllowList | None:
        name = self.queue.name
        if create:
            return ALLOW_LISTS.setdefault(name, AllowList())
        return ALLOW_LISTS.get(name)

    def handoff(self, batch: RequestTasks, job_id: str) -> Generator[None, None, None]:
        queue = self.queue
        payload = encode(batch, declared=self.allow_list() is not None)
        # Every task with a deadline: the job's own limit, which RQ enforces (it stops the
        # work horse), with a margin for the job's own work around the tasks.
        budget = time_budget([task.func for task in tasks_of(batch.tasks)])
        job = queue.create_job(
            JOB_FUNCTION,
            args=(payload,),
            job_id=job_id,
            retry=self._rq_retry,
            description=describe_batch(batch),  # RQ's default shows the arguments
            timeout=None if budget is None else math.ceil(budget) + JOB_MARGIN,
        )
        job.data  # noqa: B018 (serialized here: a failure now sends nothing)
        connect(queue.connection)
        yield
        try:
            queue.enqueue_job(job, **self._enqueue_options)
        except Exception as exc:
            if not is_duplicate(exc):
                raise  # else: an earlier try of this very enqueue stored it

    def settle(
        self, batch: RequestTasks, job_id: str, error: BaseException | None, started: float
    ) -> None:
        """Claim the job id (see ``bgtask._claim``): run here only if this process won."""
        answers: list[str] = []

        def claim() -> Generator[None, None, None]:
            yield
            key = self.queue.job_class.key_for(job_id)
            answers.append(claim_for_web(self.queue.connection, key, job_id))

        timeout = min(self.handoff_timeout, CLAIM_WINDOW - (time.monotonic() - started))
        answer, claim_error = None, error
        if timeout > 0:  # past the window a claim proves nothing: see bgtask._claim
            outcome, claim_error = self._handoff.run(
                claim, timeout=timeout, refuse_when_stuck=False
            )
            answer = answers[0] if outcome == SENT and answers else None
        if answer in ("claimed", "web"):
            reason = HandoffTimeout(f"{error}; job {job_id} is not in Redis: claimed it here")
            run_here(batch, self.fallback, self.destination(), reason)
        elif answer is not None:
            logger.warning(
                "RQ answered late (%s), but job %s reached %s: a worker runs its tasks",
                error,
                job_id,
                self.destination(),
            )
            self.handed_off(batch, f"{self.destination()} (job {job_id}, confirmed late)")
        else:
            super().settle(batch, job_id, claim_error or error, started)


def _serializer_name(serializer: object) -> str:
    name = getattr(serializer, "__name__", None) or type(serializer).__name__
    known = {"DefaultSerializer": "pickle", "JSONSerializer": "JSON"}
    return f"RQ's serializer ({known.get(name, name)})"
