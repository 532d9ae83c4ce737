"""The demo's event log: one JSON line per event, shared by every gunicorn worker.

Appends of one short line to a file opened with O_APPEND do not interleave, so workers
need no lock. The file is ``$BGTASK_DEMO_EVENTS``: ``make demo``'s gunicorn configuration
creates a fresh one per run (and removes it at exit); without it, each process starts a
log of its own in the temporary directory, so no run ever shows another run's requests.
"""

from __future__ import annotations

import contextvars
import json
import os
import tempfile
import time
from collections import OrderedDict
from typing import Any, TypedDict

__all__ = ["Event", "as_dict", "events_path", "recent_requests", "record", "request_id"]

#: The id of the request whose code (or task) is running, for every event it records.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

ENVIRONMENT_VARIABLE = "BGTASK_DEMO_EVENTS"


class Event(TypedDict):
    """One line of the log: what happened, to which request, and to which of its tasks."""

    time: float
    request: str
    path: str
    event: str
    #: The task's name, for a task's event.
    detail: str
    #: The task's id within the process ("" for the request's own events).
    task: str
    #: inline or offload, for a task's event.
    mode: str


def new_log() -> str:
    """A fresh, empty log file for this run, in the temporary directory."""
    descriptor, path = tempfile.mkstemp(prefix="bgtask-demo-", suffix=".jsonl")
    os.close(descriptor)
    return path


def events_path() -> str:
    """Where this run's events are written (a fresh file per process if none was set)."""
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path:
        path = os.environ[ENVIRONMENT_VARIABLE] = new_log()
    return path


def record(event: str, detail: str = "", *, path: str = "", task: str = "", mode: str = "") -> None:
    """Append an event for the current request."""
    line: Event = {
        "time": time.time(),
        "request": request_id.get(),
        "path": path,
        "event": event,
        "detail": detail,
        "task": task,
        "mode": mode,
    }
    with open(events_path(), "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def recent_requests(limit: int = 20) -> list[tuple[str, list[Event]]]:
    """The last ``limit`` requests, newest first, each with its events in time order."""
    by_request: OrderedDict[str, list[Event]] = OrderedDict()
    try:
        with open(events_path(), encoding="utf-8") as log:
            for line in log:
                try:
                    event: Event = json.loads(line)
                except ValueError:
                    continue  # a line being written right now
                by_request.setdefault(event["request"], []).append(event)
    except FileNotFoundError:
        return []
    newest = list(by_request.items())[-limit:]
    newest.reverse()
    return [(rid, sorted(events, key=_time)) for rid, events in newest]


def _time(event: Event) -> float:
    return event["time"]


def as_dict(event: Event) -> dict[str, Any]:
    """The event as a plain dict (for JSON output)."""
    return dict(event)
