"""The hook behind ``bgtask.testing.capture_tasks``: who is listening for queued tasks.

The request path pays one truthiness check of ``recorders`` when nothing listens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._task import BackgroundTask

__all__ = ["Recorder", "recorders"]


class Recorder(Protocol):
    """Something told of each task queued into a request's collection."""

    #: Whether requests that start while it listens run their tasks.
    run: bool

    def record(self, task: BackgroundTask) -> None: ...


#: The active recorders, innermost last. Module-global, not a contextvar, so tasks queued
#: by a threaded test server's request threads are seen by the test thread.
recorders: list[Recorder] = []
