"""Task functions that record what ran into a list, shared by the in-process tests."""

from __future__ import annotations

import contextvars

#: A request-scoped value (a request id) the tests set in a view and read in a task.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def record(events: list[str], label: str) -> None:
    """A sync task: append ``label``."""
    events.append(label)


async def record_async(events: list[str], label: str) -> None:
    """An async task: append ``label``."""
    events.append(label)
