"""The demo's event log: one JSON line per event, shared by every gunicorn worker.

Appends of one short line to a file opened with O_APPEND do not interleave, so workers
need no lock. The file is ``$BGTASK_DEMO_EVENTS``, or ``bgtask-demo-events.jsonl`` in the
temporary directory.
"""

from __future__ import annotations

import contextvars
import json
import os
import tempfile
import time
from collections import OrderedDict
from typing import Any, TypedDict

#: The id of the request whose code (or task) is running, for every event it records.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Event(TypedDict):
    """One line of the log."""

    time: float
    request: str
    path: str
    event: str
    detail: str


def events_path() -> str:
    """Where the events are written."""
    default = os.path.join(tempfile.gettempdir(), "bgtask-demo-events.jsonl")
    return os.environ.get("BGTASK_DEMO_EVENTS", default)


def record(event: str, detail: str = "", *, path: str = "") -> None:
    """Append an event for the current request."""
    line: Event = {
        "time": time.time(),
        "request": request_id.get(),
        "path": path,
        "event": event,
        "detail": detail,
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
