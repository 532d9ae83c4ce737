"""The task event stream: every transition, told to listeners that can never break a task."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import pytest

from bgtask import BackgroundTaskMiddleware, OffloadPool, drain, get_background_tasks

from .helpers.wsgi import serve

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from bgtask._events import TaskEvent


def sends_welcome(to: str) -> None:
    """A task."""


def fails() -> None:
    """A task that fails."""
    msg = "smtp down"
    raise RuntimeError(msg)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    tasks = get_background_tasks()
    tasks.add_task(sends_welcome, "a@b.c")
    if environ.get("QUERY_STRING") == "fail":
        tasks.add_task(fails)
        tasks.add_task(sends_welcome, "never@b.c")
    start_response("200 OK", [])
    return [b"ok"]


def test_listeners_hear_every_transition_in_order_with_the_request() -> None:
    """queued, started, succeeded / failed / skipped, each naming the task and its environ."""
    heard: list[tuple[str, str, str | None]] = []

    def listener(event: TaskEvent) -> None:
        environ = event.environ or {}
        heard.append((event.kind, event.name.rsplit(".", 1)[-1], environ.get("QUERY_STRING")))

    serve(BackgroundTaskMiddleware(app, listeners=[listener]), QUERY_STRING="fail")
    assert heard == [
        ("queued", "sends_welcome", "fail"),
        ("queued", "fails", "fail"),
        ("queued", "sends_welcome", "fail"),
        ("started", "sends_welcome", "fail"),
        ("succeeded", "sends_welcome", "fail"),
        ("started", "fails", "fail"),
        ("failed", "fails", "fail"),
        ("skipped", "sends_welcome", "fail"),
    ]


def test_an_event_carries_times_duration_wait_and_the_failure() -> None:
    """Timestamps in order, a duration once ended, the wait after the response, the error."""
    events: list[TaskEvent] = []
    serve(BackgroundTaskMiddleware(app, listeners=[events.append]), QUERY_STRING="fail")
    ended = {event.kind: event for event in events if event.kind in ("succeeded", "failed")}
    succeeded, failed = ended["succeeded"], ended["failed"]
    task = succeeded.task
    assert task.queued_at is not None
    assert task.started_at is not None
    assert task.ended_at is not None
    assert task.queued_at <= task.started_at <= task.ended_at
    assert succeeded.duration is not None
    assert succeeded.duration >= 0
    assert succeeded.wait is not None
    assert succeeded.wait >= 0
    assert isinstance(failed.error, RuntimeError)
    assert succeeded.error is None
    assert all(event.mode == "inline" for event in events)


def test_a_raising_listener_breaks_no_task_response_or_other_listener(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Its exception is logged once (not per event); the tasks run; the next listener hears."""
    heard: list[str] = []

    def broken(event: TaskEvent) -> None:
        msg = "the metrics backend is down"
        raise ValueError(msg)

    wrapped = BackgroundTaskMiddleware(
        app, listeners=[broken, lambda event: heard.append(event.kind)]
    )
    assert serve(wrapped) == b"ok"
    assert serve(wrapped) == b"ok"
    assert heard == ["queued", "started", "succeeded"] * 2
    reports = [r for r in bgtask_log.records if "listener" in r.getMessage()]
    assert len(reports) == 1
    assert reports[0].levelno == logging.ERROR
    assert reports[0].exc_info is not None


def test_listeners_of_one_app_do_not_hear_another_apps_tasks() -> None:
    """The middleware's listeners hear its own requests only."""
    mine: list[str] = []
    serve(BackgroundTaskMiddleware(app, listeners=[lambda event: mine.append(event.kind)]))
    serve(BackgroundTaskMiddleware(app))
    assert mine == ["queued", "started", "succeeded"]


def test_a_listener_is_called_in_the_thread_where_the_task_runs() -> None:
    """Offloaded: started and ended on the pool thread, queued in the request's."""
    threads: dict[str, int] = {}

    def listener(event: TaskEvent) -> None:
        threads[event.kind] = threading.get_ident()

    serve(BackgroundTaskMiddleware(app, backend=OffloadPool(threads=1), listeners=[listener]))
    assert drain(timeout=10)
    assert threads["queued"] == threading.get_ident()
    assert threads["started"] == threads["succeeded"] != threading.get_ident()


def test_at_the_production_level_warnings_and_errors_are_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the bgtask logger at WARNING (DEBUG off), the fast path that skips building
    events nobody hears must still log a discard, a skip and a failure."""

    def raising(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(sends_welcome, "a@b.c")
        msg = "the view failed"
        raise ValueError(msg)

    with caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(BackgroundTaskMiddleware(app), QUERY_STRING="fail")
        with pytest.raises(ValueError, match="the view failed"):
            serve(BackgroundTaskMiddleware(raising))
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("ERROR", "background task tests.test_events.fails failed"),
        ("WARNING", "background task tests.test_events.sends_welcome skipped"),
        ("WARNING", "background task tests.test_events.sends_welcome discarded"),
    ]
