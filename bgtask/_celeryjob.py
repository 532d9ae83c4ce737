"""What a Celery worker runs for each bgtask message: the task ``bgtask.run_collection``.

The functions it may run are those the CeleryBackends built in the worker process declared
on the task's own app (``task.app``), looked up by name: nothing a message names is
imported. A worker whose app has none refuses every job.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final

from ._allowlist import plain
from ._job import TasksFailed, refuse
from ._job import run_payload as _run_payload

if TYPE_CHECKING:
    from celery import Celery

    from ._allowlist import AllowList

__all__ = ["ALLOW_LISTS", "run_collection"]

#: The tasks declared on each Celery app by the CeleryBackends of this process.
ALLOW_LISTS: Final[weakref.WeakKeyDictionary[Celery, AllowList]] = weakref.WeakKeyDictionary()


def run_collection(task: Any, payload: dict[str, Any]) -> None:
    """The Celery task: run one request's collection, retrying under its policy."""
    job = f"Celery task {plain(task.request.id)}"  # the id comes from the message
    allowed = ALLOW_LISTS.get(task.app)
    if allowed is None:
        raise refuse(
            job,
            f"no CeleryBackend declares tasks on this worker's app {task.app.main!r}; start "
            "the worker with -A on the module that builds CeleryBackend(app, tasks=[...])",
        )
    progress = payload.get("done") if isinstance(payload, dict) else None
    done = {i for i in progress if type(i) is int} if isinstance(progress, list) else set()
    failures: list[tuple[str, BaseException]] = []
    not_done = _run_payload(
        payload, done, allowed=allowed, job=job, mode="celery", failures=failures
    )
    if not not_done:
        return
    # Celery records this exception (Flower shows it): each failed task's own is in its text.
    failure = TasksFailed.naming(not_done, failures)
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
            shadow=description,
            kwargsrepr="{}",
        )
    raise failure
