"""A backend of the project's own, named by its dotted path in ``settings.BGTASK``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .tasks import record

if TYPE_CHECKING:
    from bgtask import RequestTasks


class RecordingBackend:
    """Records the hand-off, then runs the collection here."""

    def submit(self, tasks: RequestTasks, /) -> None:
        record("submitted", count=len(tasks))
        tasks.run_for_request()


backend = RecordingBackend()


def rq_backend() -> object:
    """An RQ backend (nothing connects until a request's tasks are sent)."""
    from redis import Redis
    from rq import Queue

    from bgtask.rq import RQBackend

    return RQBackend(Queue("bgtask-django-tests", connection=Redis(port=6379)))


rq = rq_backend()
