"""What a request's collection runs for one ``django.tasks`` result: the job moves the
``TaskResult`` through ``READY -> RUNNING -> SUCCESSFUL | FAILED`` as Django defines them, and
sends Django's signals. A job bgtask never runs (skipped, discarded, cut) ends ``FAILED``
with :class:`TaskNotRun`.
"""

from __future__ import annotations

from traceback import format_exception
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from ._callables import is_async_callable
from ._django_compat import (
    TaskContext,
    TaskError,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)

if TYPE_CHECKING:
    from ._events import TaskEvent

__all__ = ["TaskNotRun", "heard", "job_for"]


class TaskNotRun(Exception):
    """Recorded in a result's ``errors`` for a task bgtask never ran: skipped after an
    earlier failure, discarded (the view raised, its transaction rolled back), cut at exit."""


TaskNotRun.__module__ = "bgtask.django"  # its public path (errors record the class's path)


def job_for(backend: Any, result: Any) -> _Job:
    """The job of ``result`` (async for an ``async def`` task: it runs on bgtask's loop)."""
    return (_AsyncJob if is_async_callable(result.task.func) else _Job)(backend, result)


class _Job:
    """What the collection runs for one result: it moves the result through its states."""

    def __init__(self, backend: Any, result: Any) -> None:
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


def heard(event: TaskEvent) -> None:
    """A job that will never run (skipped, discarded, cut): its result says FAILED, why."""
    job = event.task.func
    if event.kind in ("skipped", "discarded", "cut") and isinstance(job, _Job):
        job.not_run(event.reason or event.kind)
