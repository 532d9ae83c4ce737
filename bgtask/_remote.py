"""The web process's side of the RQ and Celery backends: check, encode, hand off, or run here.

A request's collection travels as one job (see ``_job.py``) whose payload names each
function by import path next to its arguments, in plain lists and dicts. Tasks are checked
as they are queued, so a function a worker could not import or would refuse (undeclared),
or arguments the engine could not serialize, fail in the request that queued them. In
``close()`` the job is handed off under bgtask's own deadline (``_handoff.py``); when
nothing was sent, the collection runs in this process instead. When the job may have
reached the engine, the backend's ``settle`` decides, so that no task ever runs twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Final, TypeVar

from . import _lifecycle
from ._collection import names_of, tasks_of
from ._fallback import describe_error, run_here
from ._handoff import NOT_SENT, SENT, Handoff, HandoffBusy
from ._importable import import_problem, reference, unwrap
from ._serializable import Serializer, arguments_problem

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from ._allowlist import AllowList
    from ._backend import Backend
    from ._events import Mode
    from ._request import RequestTasks
    from ._retry import RetryPolicy
    from ._task import BackgroundTask

__all__ = ["RemoteBackend"]

logger: Final = logging.getLogger("bgtask")

F = TypeVar("F", bound="Callable[..., object]")

#: At most one "still stuck" WARNING per this many seconds: every request would log one.
BUSY_WARNING_INTERVAL: Final = 60.0


class RemoteBackend:
    """What the RQ and Celery backends share: the check at ``add_task``, one job per
    collection handed off after the response under a deadline, and running here when
    nothing was sent.

    A subclass says where jobs go (``destination``), how the engine serializes
    (``serializer``), which allow-list applies (``allow_list``), how a job is handed off
    (``handoff``: connect, ``yield``, send) and what to do when it may have arrived
    (``settle``).

    >>> class Printing(RemoteBackend):
    ...     def destination(self): return "stdout"
    ...     def allow_list(self, create=False): return None
    ...     def handoff(self, batch, job_id):
    ...         yield
    ...         print(f"sent {len(batch)} task(s) as job {job_id}")
    >>> backend = Printing(retry=None, fallback=None, handoff_timeout=0.5)
    """

    __slots__ = ("_handoff", "_last_busy_warning", "fallback", "retry")

    #: How to declare a task, for messages: ``RQBackend(queue, tasks=[...])``.
    declare_hint = "the backend's tasks=[...]"
    #: Where its tasks run, as their events say.
    mode: Mode = "rq"

    def __init__(
        self,
        *,
        retry: RetryPolicy | None,
        fallback: Backend | None,
        handoff_timeout: float,
        tasks: Iterable[Callable[..., object]] | None = None,
    ) -> None:
        self.retry = retry
        self.fallback = fallback
        self._handoff = Handoff(handoff_timeout)
        self._last_busy_warning = -float("inf")
        if tasks is not None:
            allowed = self.allow_list(create=True)
            assert allowed is not None
            for func in tasks:
                allowed.declare(func)

    @property
    def handoff_timeout(self) -> float:
        """How long ``close()`` waits for the engine before it decides without it."""
        return self._handoff.timeout

    def destination(self) -> str:
        """Where jobs go, for messages: ``RQ queue 'bgtask'``."""
        raise NotImplementedError

    def serializer(self) -> Serializer:
        """The engine's serializer, which the arguments must pass."""
        return Serializer("repr", repr, pickles=False)

    def allow_list(self, create: bool = False) -> AllowList | None:
        """The functions workers may run (None: no allow-list); ``create`` one if needed."""
        raise NotImplementedError

    def handoff(self, batch: RequestTasks, job_id: str) -> Generator[None, None, None]:
        """Connect to the engine (sending nothing), ``yield``, then send ``batch``."""
        raise NotImplementedError

    def settle(
        self, batch: RequestTasks, job_id: str, error: BaseException | None, started: float
    ) -> None:
        """The hand-off failed after it started sending: the job may have arrived.

        ``started`` is when the hand-off began (``time.monotonic()``). By default the
        tasks do not run here (they could run twice): an ERROR names them.
        """
        self.handed_off(batch, f"{self.destination()}, unconfirmed (job {job_id})")
        logger.error(
            "could not tell whether job %s reached %s (%s); not running its %d background "
            "task(s) here, so that none runs twice; if the job did not arrive they are "
            "lost: %s",
            job_id,
            self.destination(),
            describe_error(error),
            len(names_of(batch.tasks)),
            ", ".join(names_of(batch.tasks)),
        )

    def task(self, func: F, /) -> F:
        """Declare ``func`` a task the workers may run; returns it unchanged (a decorator)."""
        allowed = self.allow_list(create=True)
        assert allowed is not None
        allowed.declare(func, bound=False)
        return func

    def check(self, task: BackgroundTask) -> None:
        """Raise ``TypeError`` for a task a worker could not import or would refuse, or
        whose arguments the engine could not serialize."""
        func, args, kwargs = unwrap(task.func, task.args, task.kwargs)
        problem = import_problem(func)
        if problem is None:
            allowed = self.allow_list()
            if allowed is not None and not allowed.allows(func):
                problem = (
                    f"{reference(func).replace(':', '.', 1)} is not declared, and workers run "
                    f"only declared functions; declare it with {self.declare_hint} or "
                    "decorate it with @backend.task"
                )
        if problem is None:
            problem = arguments_problem(args, kwargs, self.serializer())
            if problem is not None:
                problem += (
                    "; pass plain data the worker can load (ids, strings, numbers) and "
                    "fetch the rest in the task"
                )
        if problem is not None:
            msg = f"cannot queue {task.name} on {self.destination()}: {problem}"
            raise TypeError(msg)

    def submit(self, tasks: RequestTasks, /) -> None:
        """Hand ``tasks`` off as one job; run them here if nothing was sent. Never raises."""
        if tasks.seal_if_empty():
            return
        batch = tasks.take()
        job_id = uuid.uuid4().hex  # chosen before sending: settle() asks about this job
        started = time.monotonic()
        try:
            outcome, error = self._handoff.run(lambda: self.handoff(batch, job_id))
        except Exception as exc:  # no helper thread could start: nothing was sent
            outcome, error = NOT_SENT, exc
        if outcome == SENT:
            self.handed_off(batch, f"{self.destination()} (job {job_id})")
            return
        if outcome != NOT_SENT:
            try:
                self.settle(batch, job_id, error, started)
            except Exception:  # close() must not raise; not knowing, run nothing here
                logger.exception(
                    "could not settle job %s; not running its tasks here: %s",
                    job_id,
                    ", ".join(names_of(batch.tasks)),
                )
                unsettled = [task for task in tasks_of(batch.tasks) if task.state == "queued"]
                for task in unsettled:
                    _lifecycle.handed_off(
                        task, batch, self.mode, f"{self.destination()}, unsettled", final=True
                    )
        elif not isinstance(error, HandoffBusy) or self._busy_warning_due():
            run_here(batch, self.fallback, self.destination(), error)
        else:
            run_here(batch, self.fallback, self.destination(), error, level=logging.DEBUG)

    def handed_off(self, batch: RequestTasks, destination: str) -> None:
        """Tell ``batch``'s tasks (and their listeners) they went to ``destination``."""
        for task in tasks_of(batch.tasks):
            _lifecycle.handed_off(task, batch, self.mode, destination, final=True)

    def _busy_warning_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_busy_warning < BUSY_WARNING_INTERVAL:
            return False
        self._last_busy_warning = now
        return True
