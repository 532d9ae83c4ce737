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
from traceback import format_exception
from typing import TYPE_CHECKING, Any, ClassVar, Final

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.crypto import get_random_string

from ._current import current_tasks
from ._django_results import DEFAULT_MAX_RESULTS, results_of
from ._django_settings import options
from ._offload import OffloadPool, default_pool
from ._request import RequestTasks

try:  # Django 6
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 4.2 to 5.2, with the backport
    try:
        from django_tasks import TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import TaskError
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as error:
        msg = (
            "bgtask.django.AfterResponseBackend needs django.tasks (Django 6) or, on Django "
            "4.2 to 5.2, the django-tasks backport: pip install 'wsgi-bgtask[django-tasks]'"
        )
        raise ImportError(msg, name="django_tasks") from error

if TYPE_CHECKING:
    from ._events import TaskEvent

__all__ = ["AfterResponseBackend", "TaskNotRun"]

OPTIONS: Final = frozenset({"MAX_RESULTS", "OUTSIDE_REQUEST"})
OUTSIDE: Final = ("offload", "immediate")


class TaskNotRun(Exception):
    """Recorded in a result's ``errors`` for a task bgtask never ran: skipped after an
    earlier failure, discarded (the view raised, its transaction rolled back), cut at exit."""


TaskNotRun.__module__ = "bgtask.django"  # its public path (errors record the class's path)


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
        if options().backend is not None and not isinstance(options().backend, OffloadPool):
            msg = (
                f"TASKS[{alias!r}]: AfterResponseBackend runs tasks in this process, but "
                "settings.BGTASK sends requests' tasks to another backend (RQ, Celery), whose "
                "workers cannot run django.tasks results; use MODE 'inline' or 'offload'"
            )
            raise ImproperlyConfigured(msg)
        self.results = results_of(alias, bound)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"

    def _wrong(self, problem: str) -> None:
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
        job = (_AsyncJob if _is_async(task.func) else _Job)(self, result)
        collection = current_tasks.get()
        task_enqueued.send(type(self), task_result=result)
        if collection is None:
            collection = RequestTasks({})  # no request: a collection of its own
        if _heard not in collection.listeners:
            collection.listeners = (*collection.listeners, _heard)
        collection.add_task(job)
        if current_tasks.get() is None:
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


def _is_async(func: Any) -> bool:
    from ._callables import is_async_callable

    return is_async_callable(func)


class _Job:
    """What the collection runs for one result: it moves the result through its states."""

    def __init__(self, backend: AfterResponseBackend, result: Any) -> None:
        self.backend = backend
        self.result = result
        func = result.task.func
        # Logs name the task's function, as for any bgtask task.
        self.__module__ = func.__module__
        self.__qualname__ = func.__qualname__

    def __call__(self) -> None:
        self._start()
        try:
            returned = self.result.task.func(*self._arguments(), **self.result.kwargs)
            self._succeed(returned)
        except BaseException as error:
            self._fail(error)
            raise  # bgtask's policy: logged at ERROR, the rest of the collection skipped

    def _arguments(self) -> list[Any]:
        result = self.result
        if result.task.takes_context:
            return [TaskContext(task_result=result), *result.args]
        return list(result.args)

    def _start(self) -> None:
        result, now = self.result, timezone.now()
        _set(result, status=TaskResultStatus.RUNNING, started_at=now, last_attempted_at=now)
        result.worker_ids.append(self.backend.worker_id)
        task_started.send(type(self.backend), task_result=result)

    def _succeed(self, returned: Any) -> None:
        value = normalize_json(returned)  # what Django stores; not JSON: a failure
        _set(self.result, _return_value=value, finished_at=timezone.now())
        _set(self.result, status=TaskResultStatus.SUCCESSFUL)
        task_finished.send(type(self.backend), task_result=self.result)

    def _fail(self, error: BaseException) -> None:
        kind = type(error)
        self.result.errors.append(
            TaskError(
                exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                traceback="".join(format_exception(error)),
            )
        )
        _set(self.result, finished_at=timezone.now(), status=TaskResultStatus.FAILED)
        task_finished.send(type(self.backend), task_result=self.result)

    def not_run(self, reason: str) -> None:
        if self.result.status != TaskResultStatus.READY:
            return  # a task cut while it ran stays RUNNING: its outcome is unknown
        try:  # raised, for a traceback (Django's task_finished log prints the current one)
            raise TaskNotRun(f"{self.__module__}.{self.__qualname__} did not run: {reason}")
        except TaskNotRun as error:
            self._fail(error)


class _AsyncJob(_Job):
    """The same, for an ``async def`` task: bgtask awaits it on its event loop."""

    async def __call__(self) -> None:  # type: ignore[override]
        self._start()
        try:
            returned = await self.result.task.func(*self._arguments(), **self.result.kwargs)
            self._succeed(returned)
        except BaseException as error:
            self._fail(error)
            raise


def _set(result: Any, **fields: Any) -> None:
    # TaskResult is a frozen dataclass: backends update it this way (Django's own do).
    for name, value in fields.items():
        object.__setattr__(result, name, value)


def _heard(event: TaskEvent) -> None:
    """A job that will never run (skipped, discarded, cut): its result says FAILED, why."""
    job = event.task.func
    if event.kind in ("skipped", "discarded", "cut") and isinstance(job, _Job):
        job.not_run(event.reason or event.kind)


AfterResponseBackend.__module__ = "bgtask.django"  # its public path, in reprs and tracebacks
