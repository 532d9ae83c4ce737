"""An app whose task event listeners misbehave, for the real-gunicorn hooks test.

Three listeners fail or hang on every event: one raises an ``Exception``, one a
``BaseException`` of its own, one (behind a ``QueuedListener``) blocks for a minute. A
fourth, well-behaved, appends each event to ``$BGTASK_TEST_EVENTS``; each task does too.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING

from bgtask import BackgroundTaskMiddleware, QueuedListener, get_background_tasks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from bgtask import TaskEvent

EVENTS = os.environ.get("BGTASK_TEST_EVENTS", os.devnull)


def record(**fields: object) -> None:
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


def recorded_task(tag: str) -> None:
    """The task: says it ran."""
    record(event="ran", tag=tag)


class ListenerBug(BaseException):
    """Not an Exception."""


def raising(event: TaskEvent) -> None:
    msg = "the metrics backend is down"
    raise ConnectionError(msg)


def raising_base(event: TaskEvent) -> None:
    raise ListenerBug


def hanging(event: TaskEvent) -> None:
    threading.Event().wait(60)  # an alerting service that never answers


def recording(event: TaskEvent) -> None:
    record(event=event.kind, task=event.name)


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/?tag``: queue one task tagged ``tag``."""
    get_background_tasks().add_task(recorded_task, environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


app = BackgroundTaskMiddleware(
    application, listeners=[raising, raising_base, QueuedListener(hanging), recording]
)
