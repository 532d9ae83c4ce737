"""The WSGI app the real-server tests run under gunicorn and Werkzeug's server.

Every task appends one JSON line to ``$BGTASK_TEST_EVENTS`` (O_APPEND: lines from several
workers do not interleave), so the test process can wait on the file with a deadline.

Offload mode is off unless asked for: ``BGTASK_TEST_OFFLOAD=1`` uses the default pool,
``BGTASK_TEST_POOL_THREADS`` and ``BGTASK_TEST_MAX_PENDING`` an ``OffloadPool`` of that size.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import bgtask
from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    OffloadPool,
    RetryPolicy,
    get_background_tasks,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

EVENTS = os.environ.get("BGTASK_TEST_EVENTS", os.devnull)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def record(event: str, **fields: Any) -> None:
    """Append one event line, with the time, the pid and the request id in context."""
    line = {"event": event, "time": time.time(), "pid": os.getpid(), "ctx": request_id.get()}
    line.update(fields)
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(json.dumps(line) + "\n")


def sync_task(tag: str, seconds: float = 0.0) -> None:
    record("start", tag=tag, kind="sync")
    if seconds:
        time.sleep(seconds)  # the task's own slow work
    record("end", tag=tag, kind="sync")


async def async_task(tag: str, seconds: float = 0.0) -> None:
    record("start", tag=tag, kind="async", loop_thread=threading.get_native_id())
    if seconds:
        await asyncio.sleep(seconds)
    record("end", tag=tag, kind="async")


def failing_task(tag: str) -> None:
    record("start", tag=tag, kind="failing")
    raise RuntimeError("this task fails on purpose")


_attempts: dict[str, int] = {}


@bgtask.task(retry=RetryPolicy(max=1, backoff=1.0))
def flaky_task(tag: str) -> None:
    """Fails its first attempt (per tag, in this worker), then succeeds after a 1 s backoff."""
    _attempts[tag] = attempt = _attempts.get(tag, 0) + 1
    record("start", tag=tag, kind="flaky", attempt=attempt)
    if attempt == 1:
        raise ConnectionError("the SMTP server was down")
    record("end", tag=tag, kind="flaky", attempt=attempt)


@bgtask.task(timeout=0.3)
async def deadline_task(tag: str, seconds: float) -> None:
    """Sleeps ``seconds`` under a 0.3 s deadline; records its cancellation."""
    record("start", tag=tag, kind="deadline")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        record("cancelled", tag=tag, kind="deadline")
        raise
    record("end", tag=tag, kind="deadline")


class CustomStop(BaseException):
    """A BaseException of the application's own."""


def raising_task(tag: str, error: str) -> None:
    """Raise the BaseException named ``error`` (a task's own, not a signal's)."""
    record("start", tag=tag, kind="raising")
    if error == "GeventTimeout":
        import gevent

        with gevent.Timeout(0.01):  # a real gevent.Timeout, raised into this greenlet
            gevent.sleep(1)
    raise {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit}.get(
        error, CustomStop
    )()


if os.environ.get("BGTASK_TEST_COUNT_SENDFILE"):
    # Count the worker's sendfile calls: proof that a file response kept the fast path.
    _sendfile = os.sendfile

    def _counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        record("sendfile")
        return _sendfile(out_fd, in_fd, offset, count)

    os.sendfile = _counting_sendfile

if os.environ.get("BGTASK_TEST_ASYNC_AT_IMPORT"):
    # Start the private loop in the gunicorn master (with --preload), before the fork.
    BackgroundTask(async_task, "import")()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/<shape>?tag=..&task=sync,async&seconds=..``: queue the tasks, answer in ``shape``."""
    query = {key: values[0] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    tag = query.get("tag", "-")
    request_id.set(tag)
    seconds = float(query.get("seconds", "0"))
    tasks = get_background_tasks()
    for kind in filter(None, query.get("task", "").split(",")):
        if kind == "failing":
            tasks.add_task(failing_task, tag)
        elif kind == "raising":
            tasks.add_task(raising_task, tag, query["error"])
        elif kind == "async":
            tasks.add_task(async_task, tag, seconds)
        elif kind == "flaky":
            tasks.add_task(flaky_task, tag)
        elif kind == "deadline":
            tasks.add_task(deadline_task, tag, seconds)
        else:
            tasks.add_task(sync_task, tag, seconds)
    shape = environ["PATH_INFO"].strip("/")
    if shape == "stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(int(query.get("chunks", "3")))
    if shape == "file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        file_wrapper = environ["wsgi.file_wrapper"]
        response: Iterable[bytes] = file_wrapper(open(query["path"], "rb"))  # noqa: SIM115
        return response
    body = f"ok {tag}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _stream(chunks: int) -> Iterator[bytes]:
    for i in range(chunks):
        yield f"chunk {i}\n".encode()


def _offload() -> bool | OffloadPool:
    """What the environment asks for: no offload, the default pool, or a sized one."""
    threads = os.environ.get("BGTASK_TEST_POOL_THREADS")
    max_pending = os.environ.get("BGTASK_TEST_MAX_PENDING")
    if threads or max_pending:
        return OffloadPool(
            threads=int(threads) if threads else None,
            max_pending=int(max_pending) if max_pending else 1000,
        )
    return bool(os.environ.get("BGTASK_TEST_OFFLOAD"))


app = BackgroundTaskMiddleware(application, offload=_offload())
