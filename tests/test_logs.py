"""Log records: structured fields, named threads, and gunicorn's error log."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

import pytest

from bgtask import BackgroundTaskMiddleware, OffloadPool, drain, get_background_tasks

from .helpers.readme import block
from .helpers.servers import Gunicorn, wait_for
from .helpers.serving import get, has_event
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def sends_welcome(to: str) -> None:
    """A task."""


async def sends_welcome_async(to: str) -> None:
    """An async task."""


def fails(to: str) -> None:
    """A task that fails."""
    msg = "smtp down"
    raise RuntimeError(msg)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    tasks = get_background_tasks()
    tasks.add_task(sends_welcome, "a@b.c")
    tasks.add_task(sends_welcome_async, "a@b.c")
    tasks.add_task(fails, "a@b.c")
    start_response("200 OK", [])
    return [b"ok"]


def test_every_task_record_carries_task_event_mode_duration_and_request_id(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """The fields JSON formatters and structlog read, on every record of a task event."""
    serve(BackgroundTaskMiddleware(app), HTTP_X_REQUEST_ID="req-7")
    records = [r for r in bgtask_log.records if r.getMessage().startswith("background task")]
    assert [(r.__dict__["event"], r.__dict__["task"].rsplit(".", 1)[-1]) for r in records] == [
        ("started", "sends_welcome"),
        ("succeeded", "sends_welcome"),
        ("started", "sends_welcome_async"),
        ("succeeded", "sends_welcome_async"),
        ("started", "fails"),
        ("failed", "fails"),
    ]
    for record in records:
        assert record.__dict__["request_id"] == "req-7"
        assert record.__dict__["mode"] == "inline"
        ended = record.__dict__["event"] != "started"
        assert (record.__dict__["duration"] is not None) == ended


def test_task_threads_are_named_after_what_they_do(bgtask_log: pytest.LogCaptureFixture) -> None:
    """Offloaded tasks log from ``bgtask-offload-N``, async ones from ``bgtask-loop``."""
    serve(BackgroundTaskMiddleware(app, backend=OffloadPool(threads=1)))
    assert drain(timeout=10)
    threads = {
        r.__dict__["task"].rsplit(".", 1)[-1]: r.threadName
        for r in bgtask_log.records
        if r.__dict__.get("event") == "started"
    }
    assert re.fullmatch(r"bgtask-offload-\d+", threads["sends_welcome"] or "")
    assert re.fullmatch(r"bgtask-offload-\d+", threads["fails"] or "")
    # An async task's steps run on the private loop, whose thread is named too.
    assert "bgtask-loop" in {thread.name for thread in threading.enumerate()}


@pytest.mark.slow
@pytest.mark.parametrize(("level", "debug_lines"), [("info", False), ("debug", True)])
def test_under_gunicorn_a_task_failure_is_in_the_error_log_at_its_level(
    tmp_path: Path, level: str, debug_lines: bool
) -> None:
    """With bgtask's hook: gunicorn's format (time, pid, level), and ``--log-level`` applies
    (a task's DEBUG start line only at ``debug``)."""
    events = tmp_path / "events.jsonl"
    args = ["--config", "tests/apps/gunicorn_heartbeat_conf.py", "--log-level", level]
    with Gunicorn(
        "tests.apps.server_app:app",
        tmp_path / "server.log",
        worker_class="sync",
        args=args,
        env={"BGTASK_TEST_EVENTS": str(events)},
    ) as server:
        assert get(server, "/?tag=one&task=failing")[0].status == 200
        wait_for(has_event(events, "start", "one"), what="the failing task")
        # The sync worker serves the next request once the first one's close() returned.
        assert get(server, "/?tag=two")[0].status == 200
        log = server.log()
    shape = r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\] \[(\d+)\] \[ERROR\] background task "
    line = re.search(shape + r"tests\.apps\.server_app\.failing_task failed$", log, re.MULTILINE)
    # The README shows the same shape.
    assert re.match(shape, block("[ERROR] background task yourapp").text)
    assert line is not None, log
    started = "[DEBUG] background task tests.apps.server_app.failing_task started"
    assert (started in log) == debug_lines, log
    assert int(line.group(2)) != server.pid  # the worker's pid, not the master's
    assert "RuntimeError: this task fails on purpose" in log
