"""Task functions for the RQ and Celery tests: importable by name, so workers can run them.

Each appends one JSON line to the events file it is given (O_APPEND: lines from several
processes do not interleave), with the pid that ran it.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bgtask
from bgtask import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable


def record_event(events: str, event: str, **fields: Any) -> None:
    """Append one event line, with the time and the pid of the process."""
    line = {"event": event, "time": time.time(), "pid": os.getpid(), **fields}
    with open(events, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def read_events(events: str | Path) -> list[dict[str, Any]]:
    """Every complete event line so far."""
    path = Path(events)
    if not path.exists():
        return []
    text = path.read_text()
    complete = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    return [json.loads(line) for line in complete]


def record(events: str, tag: str) -> None:
    """A sync task: records that it ran."""
    record_event(events, "task", tag=tag, kind="sync")


async def record_async(events: str, tag: str) -> None:
    """An async task: records that it ran, and in which thread (bgtask's loop thread)."""
    await asyncio.sleep(0)
    record_event(events, "task", tag=tag, kind="async", thread=threading.get_native_id())


def fail(events: str, tag: str) -> None:
    """A task that records its start, then raises."""
    record_event(events, "task", tag=tag, kind="failing")
    msg = "this task fails on purpose"
    raise RuntimeError(msg)


def flaky(events: str, tag: str, failures: int) -> None:
    """Fails on its first ``failures`` attempts (counted in the events file), then succeeds."""
    attempts = sum(1 for e in read_events(events) if e["event"] == "attempt" and e["tag"] == tag)
    record_event(events, "attempt", tag=tag)
    if attempts < failures:
        msg = f"attempt {attempts + 1} of {tag} fails on purpose"
        raise RuntimeError(msg)
    record_event(events, "task", tag=tag, kind="flaky")


@bgtask.task(retry=RetryPolicy(max=2, backoff=0.2), timeout=30)
def flaky_with_options(events: str, tag: str, failures: int) -> None:
    """``flaky``, with its own retries (``@bgtask.task``): the worker retries it in place."""
    flaky(events, tag, failures)


@bgtask.task(timeout=2)
def report_limits(events: str, tag: str) -> None:
    """Records the time limits the engine gave the job this task runs in."""
    limits: Any = None
    try:
        from rq import get_current_job

        job = get_current_job()
        limits = job.timeout if job is not None else None
    except ImportError:
        pass
    if limits is None:
        from celery import current_task

        hard, soft = current_task.request.timelimit
        limits = {"soft": soft, "hard": hard}
    record_event(events, "task", tag=tag, kind="limits", limits=limits)


def write_marker(path: str) -> None:
    """Importable, and never declared: a worker that ran it would leave ``path`` behind."""
    Path(path).write_text("ran\n")


def without_wraps(func: Callable[..., None]) -> Callable[..., None]:
    """A decorator that forgets ``functools.wraps``: its wrapper hides the function's name."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        func(*args, **kwargs)

    return wrapper


@without_wraps
def decorated(events: str, tag: str) -> None:
    """A task behind that decorator: its qualname is ``without_wraps.<locals>.wrapper``."""
    record(events, tag)


def record_app(events: str, tag: str) -> None:
    """A task of a Flask app: records the name and a config value of ``current_app``."""
    import flask

    app = flask.current_app
    record_event(events, "task", tag=tag, kind="app", app=app.name, greeting=app.config["GREETING"])


def create_app() -> Any:
    """The Flask app the workers run tasks in (``bgtask.flask.worker_context(create_app)``)."""
    import flask

    app = flask.Flask("bgtask_worker_app")
    app.config["GREETING"] = "hello from the worker"
    return app


KINDS: dict[str, Callable[..., object]] = {
    "record": record,
    "async": record_async,
    "fail": fail,
    "flaky": flaky,
    "flaky_with_options": flaky_with_options,
    "report_limits": report_limits,
    "app": record_app,
}
#: The functions the test apps declare (``write_marker`` is not one of them).
DECLARED: list[Callable[..., object]] = [
    record,
    record_async,
    fail,
    flaky,
    flaky_with_options,
    report_limits,
    record_app,
]
