"""A request's collection as a job's payload: plain lists, dicts and strings.

Each task is its function's import path (``module:qualname``) next to its arguments (and,
with tracing, the trace headers it was queued with: ``_carrier``); nested collections keep
their own error policy. ``_job.py`` reads it on the worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._carrier import carrier_of
from ._collection import BackgroundTasks, names_of
from ._importable import import_problem, reference, unwrap
from ._job import PAYLOAD_VERSION

if TYPE_CHECKING:
    from ._collection import Item
    from ._retry import RetryPolicy

__all__ = ["describe_batch", "encode"]


def encode(
    batch: BackgroundTasks, retry: RetryPolicy | None = None, *, declared: bool = False
) -> dict[str, Any]:
    """The job's payload for ``batch``: plain lists, dicts and strings around the arguments.

    ``declared``: every function was checked against the backend's allow-list.
    """
    payload: dict[str, Any] = {
        "bgtask": PAYLOAD_VERSION,
        "declared": declared,
        "continue_on_error": batch.continue_on_error,
        "tasks": [_encode(item) for item in batch.tasks],
    }
    if retry is not None:
        payload["retry_delays"] = retry.delays()
    return payload


def describe_batch(batch: BackgroundTasks, limit: int = 10) -> str:
    """A job description naming the tasks (never their arguments) for the engine's logs."""
    names = names_of(batch.tasks)
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"bgtask: {shown}{more}"


def _encode(item: Item) -> dict[str, Any]:
    if isinstance(item, BackgroundTasks):
        return {
            "tasks": [_encode(inner) for inner in item.tasks],
            "continue_on_error": item.continue_on_error,
        }
    func, args, kwargs = unwrap(item.func, item.args, item.kwargs)
    problem = import_problem(func)
    if problem is not None:
        msg = f"cannot queue {item.name}: {problem}"
        raise TypeError(msg)
    entry: dict[str, Any] = {"func": reference(func), "args": list(args), "kwargs": kwargs}
    # Optional (workers without tracing ignore it): the trace the task was queued in.
    carrier = carrier_of(item.context)
    if carrier is not None:
        entry["trace"] = carrier
    return entry
