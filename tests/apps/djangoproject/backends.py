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
