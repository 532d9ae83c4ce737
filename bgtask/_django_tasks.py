"""``bgtask.django.AfterResponseBackend``: a ``django.tasks`` backend that runs after the response.

``TASKS = {"default": {"BACKEND": "bgtask.django.AfterResponseBackend"}}``. During a request
(``BgTaskMiddleware``), ``my_task.enqueue(...)`` queues into the request's collection: it
runs after the response, in enqueue order with the request's other tasks, under bgtask's
error policy (a failure skips the rest), and only if the transaction it was enqueued in
commits. Outside a request (a management command, a shell) it goes to the offload pool, or
runs at once in ``enqueue()`` with ``"OUTSIDE_REQUEST": "immediate"``. Works with Django 6's
``django.tasks`` and with the ``django-tasks`` backport on Django 4.2 to 5.2.
"""

from __future__ import annotations

import os
import socket
from typing import Any, ClassVar, Final, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.crypto import get_random_string

from ._backend import CheckingBackend
from ._current import current_tasks
from ._django_compat import (
    BaseTaskBackend,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from ._django_jobs import TaskNotRun, heard, job_for
from ._django_middleware import ConnectionScope
from ._django_results import DEFAULT_MAX_RESULTS, results_of
from ._django_settings import options
from ._offload import OffloadPool, default_pool
from ._request import RequestTasks

__all__ = ["AfterResponseBackend", "TaskNotRun"]

OPTIONS: Final = frozenset({"MAX_RESULTS", "OUTSIDE_REQUEST"})
OUTSIDE: Final = ("offload", "immediate")


class AfterResponseBackend(BaseTaskBackend):  # type: ignore[misc]  # Django ships no types
    """Runs ``django.tasks`` tasks after the response is sent, in this process.

    ``OPTIONS``: ``MAX_RESULTS`` (default 1000), how many recent results ``get_result``
    finds; ``OUTSIDE_REQUEST``, ``"offload"`` (default) or ``"immediate"``.
    """

    supports_defer: ClassVar[bool] = False  # run_after: InvalidTask, from validate_task
    supports_async_task: ClassVar[bool] = True  # on bgtask's event loop
    supports_get_result: ClassVar[bool] = False  # within this process only (see get_result)
    supports_priority: ClassVar[bool] = False  # enqueue order, always

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            self._wrong(f"has unknown keys {unknown}; the keys are {sorted(OPTIONS)}")
        bound = self.options.get("MAX_RESULTS", DEFAULT_MAX_RESULTS)
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
            self._wrong(f"['MAX_RESULTS'] must be a whole number >= 0, got {bound!r}")
        self.outside = self.options.get("OUTSIDE_REQUEST", "offload")
        if self.outside not in OUTSIDE:
            self._wrong(
                f"['OUTSIDE_REQUEST'] must be 'offload' or 'immediate', got {self.outside!r}"
            )
        if isinstance(options().backend, CheckingBackend):
            # RQ's and Celery's: they send tasks to workers by name, and a result's job is not
            # importable there (their check would refuse each enqueue with a TypeError).
            msg = (
                f"TASKS[{alias!r}]: AfterResponseBackend runs tasks in this process, but "
                "settings.BGTASK sends requests' tasks to other processes (RQ, Celery), whose "
                "workers cannot run django.tasks results; use MODE 'inline' or 'offload'"
            )
            raise ImproperlyConfigured(msg)
        self.results = results_of(alias, bound)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def _wrong(self, problem: str) -> NoReturn:
        msg = f"TASKS[{self.alias!r}]['OPTIONS']{'' if problem.startswith('[') else ' '}{problem}"
        raise ImproperlyConfigured(msg)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Queue ``task`` (after the response, or on the pool); return its ``TaskResult``."""
        self.validate_task(task)
        result = TaskResult(
            task=task, id=get_random_string(32), status=TaskResultStatus.READY,
            enqueued_at=timezone.now(), started_at=None, last_attempted_at=None,
            finished_at=None, args=args, kwargs=kwargs, backend=self.alias, errors=[],
            worker_ids=[],
        )  # fmt: skip
        self.results.keep(result)
        job = job_for(self, result)
        collection = current_tasks.get()
        # A request's collection that already ran (a coroutine a task left behind enqueues
        # late) is like no request: a collection of its own, rather than an error.
        alone = collection is None or collection._sealed
        if collection is None or alone:
            collection = RequestTasks({}, scope=ConnectionScope())
        task_enqueued.send(type(self), task_result=result)
        if heard not in collection.listeners:
            collection.listeners = (*collection.listeners, heard)
        collection.add_task(job)
        if alone:
            if self.outside == "immediate":
                collection.run_for_request()
            else:
                pool = options().backend
                (pool if isinstance(pool, OffloadPool) else default_pool()).submit(collection)
        return result

    def get_result(self, result_id: str) -> Any:
        """The result of a task this process enqueued, among the last ``MAX_RESULTS``."""
        result = self.results.find(result_id)
        if result is None:
            msg = (
                f"no result {result_id!r} in this process: AfterResponseBackend keeps the "
                f"last {self.results.bound} results of the process that enqueued them"
            )
            raise TaskResultDoesNotExist(msg)
        return result


AfterResponseBackend.__module__ = "bgtask.django"  # its public path, in reprs and tracebacks
