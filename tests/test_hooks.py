"""The public hooks: process-wide and per-app listeners, request ids, slow listeners."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from typing import TYPE_CHECKING

import flask
import pytest

import bgtask
from bgtask import (
    BackgroundTaskMiddleware,
    OffloadPool,
    QueuedListener,
    TaskEvent,
    drain,
    get_background_tasks,
)
from bgtask.flask import BgTask

from .helpers.servers import DEADLINE, Gunicorn, lines, wait_for
from .helpers.wsgi import Call, serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def sends_welcome(to: str) -> None:
    """A task."""


def fails(to: str) -> None:
    """A task that fails."""
    msg = "smtp down"
    raise RuntimeError(msg)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    get_background_tasks().add_task(sends_welcome, "secret@example.com")
    if environ.get("QUERY_STRING") == "fail":
        get_background_tasks().add_task(fails, "secret@example.com")
    start_response("200 OK", [])
    return [b"ok"]


@pytest.fixture
def heard() -> Iterator[list[TaskEvent]]:
    """Every event of the process while the test runs, from a process-wide subscription."""
    events: list[TaskEvent] = []
    listener = bgtask.subscribe(events.append)
    yield events
    bgtask.unsubscribe(listener)


def test_a_process_wide_listener_hears_every_app_until_unsubscribed() -> None:
    """``subscribe`` is process-wide (and returns the listener); ``unsubscribe`` stops it."""
    kinds: list[str] = []

    @bgtask.subscribe
    def listener(event: TaskEvent) -> None:
        kinds.append(event.kind)

    serve(BackgroundTaskMiddleware(app))
    serve(BackgroundTaskMiddleware(app))
    bgtask.unsubscribe(listener)
    serve(BackgroundTaskMiddleware(app))
    assert kinds == ["queued", "started", "succeeded"] * 2


def test_a_request_id_comes_from_the_x_request_id_header(heard: list[TaskEvent]) -> None:
    """Every event of the request carries the header's value."""
    serve(BackgroundTaskMiddleware(app), HTTP_X_REQUEST_ID="req-42")
    assert [event.request_id for event in heard] == ["req-42"] * 3


def test_a_request_without_one_gets_a_generated_id_shared_by_its_events(
    heard: list[TaskEvent],
) -> None:
    """One id per request, the same in every event of it, another for the next request."""
    serve(BackgroundTaskMiddleware(app))
    serve(BackgroundTaskMiddleware(app))
    ids = [event.request_id for event in heard]
    assert ids[0] is not None
    assert len(ids[0]) == 32
    assert ids[:3] == [ids[0]] * 3
    assert ids[3:] == [ids[3]] * 3
    assert ids[3] != ids[0]


def test_the_request_id_header_is_configurable_and_hostile_values_are_replaced(
    heard: list[TaskEvent],
) -> None:
    """``request_id_header`` names the header; an unprintable or huge value is not used."""
    wrapped = BackgroundTaskMiddleware(app, request_id_header="X-Correlation-ID")
    serve(wrapped, HTTP_X_CORRELATION_ID="corr-1", HTTP_X_REQUEST_ID="ignored")
    serve(wrapped, HTTP_X_CORRELATION_ID="forged\nERROR line")
    serve(wrapped, HTTP_X_CORRELATION_ID="x" * 10_000)
    ids = [event.request_id for event in heard if event.kind == "queued"]
    assert ids[0] == "corr-1"
    assert all(request_id and len(request_id) == 32 for request_id in ids[1:])


def test_events_carry_mode_route_times_and_the_error_never_the_arguments(
    heard: list[TaskEvent],
) -> None:
    """A failure: its exception, where it came from, when; no argument value anywhere."""
    serve(BackgroundTaskMiddleware(app), QUERY_STRING="fail", PATH_INFO="/signup")
    failed = next(event for event in heard if event.kind == "failed")
    assert isinstance(failed.error, RuntimeError)
    assert failed.environ is not None
    assert failed.environ["PATH_INFO"] == "/signup"
    assert failed.mode == "inline"
    assert failed.queued_at is not None
    assert failed.started_at is not None
    assert failed.ended_at is not None
    assert failed.queued_at <= failed.started_at <= failed.ended_at <= failed.at
    assert failed.duration is not None
    assert failed.wait is not None
    public = [name for name in dir(TaskEvent) if not name.startswith("_")]
    for event in heard:
        values = [repr(getattr(event, name)) for name in public if name != "environ"]
        assert not any("secret@example.com" in value for value in values)


def test_an_offloaded_task_is_told_with_the_offload_mode(heard: list[TaskEvent]) -> None:
    """Queued inline, handed off, then started and ended on the pool."""
    serve(BackgroundTaskMiddleware(app, backend=OffloadPool(threads=1)))
    assert drain(timeout=10)
    assert [(event.kind, event.mode) for event in heard] == [
        ("queued", "inline"),
        ("handed_off", "offload"),
        ("started", "offload"),
        ("succeeded", "offload"),
    ]


def test_an_event_read_later_says_what_was_true_when_it_happened() -> None:
    """A ``started`` event has no duration, even when read after the task ended."""
    events: list[TaskEvent] = []
    serve(BackgroundTaskMiddleware(app, listeners=[events.append]))
    started = next(event for event in events if event.kind == "started")
    assert started.duration is None
    assert started.ended_at is None
    assert started.wait is not None


def test_flask_listeners_come_from_the_extension_and_from_the_config() -> None:
    """``BgTask(app, listeners=...)`` and ``BGTASK_LISTENERS`` both hear; so does the
    configured request id header."""
    from_extension: list[str] = []
    from_config: list[str | None] = []
    flask_app = flask.Flask("hooks")
    flask_app.config["BGTASK_LISTENERS"] = [lambda event: from_config.append(event.request_id)]
    flask_app.config["BGTASK_REQUEST_ID_HEADER"] = "X-Trace"
    BgTask(flask_app, listeners=[lambda event: from_extension.append(event.kind)])

    @flask_app.get("/")
    def index() -> str:
        get_background_tasks().add_task(sends_welcome, "a@b.c")
        return "ok"

    assert flask_app.test_client().get("/", headers={"X-Trace": "t-1"}).text == "ok"
    assert from_extension == ["queued", "started", "succeeded"]
    assert from_config == ["t-1"] * 3


def test_a_listener_raising_a_base_exception_breaks_nothing(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A listener's own BaseException is its failure, logged; the tasks and the other
    listeners go on, and nothing escapes close()."""
    heard: list[str] = []

    class ListenerBug(BaseException):
        """Not an Exception."""

    def interrupting(event: TaskEvent) -> None:
        raise ListenerBug

    wrapped = BackgroundTaskMiddleware(
        app, listeners=[interrupting, lambda event: heard.append(event.kind)]
    )
    assert serve(wrapped, QUERY_STRING="fail") == b"ok"
    assert heard == ["queued", "queued", "started", "succeeded", "started", "failed"]
    assert sum("listener" in record.getMessage() for record in bgtask_log.records) == 1


def test_a_slow_queued_listener_holds_no_response_task_or_other_listener() -> None:
    """While the slow listener is stuck, responses are answered and tasks run; once it is
    released it has heard every event, in order, from a thread of its own."""
    release = threading.Event()
    slow_heard: list[tuple[str, str]] = []
    fast_heard: list[str] = []

    def slow(event: TaskEvent) -> None:
        assert release.wait(10)
        slow_heard.append((event.kind, threading.current_thread().name))

    queued = QueuedListener(slow)
    wrapped = BackgroundTaskMiddleware(
        app, listeners=[queued, lambda event: fast_heard.append(event.kind)]
    )
    call = Call(wrapped)
    assert call.body() == b"ok"  # the response, though the listener is stuck on "queued"
    call.close()
    assert serve(wrapped) == b"ok"
    assert fast_heard == ["queued", "started", "succeeded"] * 2
    assert slow_heard == []
    release.set()
    assert queued.flush(timeout=10)
    assert slow_heard == [
        (kind, "bgtask-listener") for kind in ["queued", "started", "succeeded"] * 2
    ]


def test_a_queued_listener_that_falls_behind_drops_and_counts_never_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past ``max_pending`` events are dropped (one WARNING), the task still runs."""
    release = threading.Event()
    queued = QueuedListener(lambda event: release.wait(10), max_pending=2)
    wrapped = BackgroundTaskMiddleware(app, listeners=[queued])
    with caplog.at_level(logging.WARNING, logger="bgtask"):
        for _ in range(3):
            assert serve(wrapped) == b"ok"
    release.set()
    assert queued.flush(timeout=10)
    # Nine events: two waited (and one more if the thread had taken the first), the rest
    # were dropped.
    assert 6 <= queued.dropped <= 7
    assert sum("behind" in record.getMessage() for record in caplog.records) == 1


def test_a_queued_listener_that_raises_is_logged_once_and_keeps_hearing(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Its failure is reported like any listener's, and later events still reach it."""
    calls: list[str] = []

    def broken(event: TaskEvent) -> None:
        calls.append(event.kind)
        msg = "the alerting service is down"
        raise ConnectionError(msg)

    queued = QueuedListener(broken)
    serve(BackgroundTaskMiddleware(app, listeners=[queued]))
    assert queued.flush(timeout=10)
    assert calls == ["queued", "started", "succeeded"]
    reports = [r for r in bgtask_log.records if "listener" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].exc_info is not None


@pytest.mark.slow
def test_under_gunicorn_misbehaving_listeners_break_no_task_response_or_connection(
    tmp_path: Path,
) -> None:
    """Raising (Exception, BaseException) and hanging listeners: every response on one
    keep-alive connection, every task, every event of the good listener; each failure
    logged once; the worker is the same process throughout."""
    events = tmp_path / "events.jsonl"
    with Gunicorn(
        "tests.apps.listener_app:app",
        tmp_path / "server.log",
        env={"BGTASK_TEST_EVENTS": str(events)},
    ) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        for tag in ("one", "two", "three"):
            connection.request("GET", f"/?{tag}")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"ok")
        connection.close()
        wait_for(lambda: len(list(lines(events))) == 12, what="3 tasks and their 9 events")
        log = server.log()
    recorded = [json.loads(line) for line in lines(events)]
    assert sorted(r["tag"] for r in recorded if r["event"] == "ran") == ["one", "three", "two"]
    kinds = [r["event"] for r in recorded if r["event"] != "ran"]
    assert kinds == ["queued", "started", "succeeded"] * 3
    assert len({r["pid"] for r in recorded}) == 1
    assert log.count("a task event listener (<function raising at") == 1
    assert log.count("a task event listener (<function raising_base at") == 1
    assert "Error handling request" not in log
