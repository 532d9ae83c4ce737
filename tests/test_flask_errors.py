"""Flask errors: a raising view discards its tasks, error handlers queue their own."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import flask

from bgtask import (
    BackgroundTasks,
    get_background_tasks,
)

from .helpers.flasking import (
    explode,
    send_welcome_email,
    warnings_of,
)
from .helpers.recording import record

if TYPE_CHECKING:
    import pytest
    from flask.testing import FlaskClient
    from werkzeug.exceptions import HTTPException


# Errors


def test_a_raising_view_discards_its_tasks_with_a_warning(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """An unhandled error: 500, the queued tasks dropped, a WARNING naming each."""

    @app.get("/crash")
    def crash(tasks: BackgroundTasks) -> str:
        tasks.add_task(send_welcome_email, events, "ada@example.com")
        get_background_tasks().add_task(record, events, "audit")
        msg = "database down"
        raise ValueError(msg)

    assert client.get("/crash").status_code == 500
    assert events == []
    assert warnings_of(bgtask_log) == [
        "background task tests.helpers.flasking.send_welcome_email discarded: the view raised "
        "ValueError",
        "background task tests.helpers.recording.record discarded: the view raised ValueError",
    ]


def test_a_500_error_handler_can_queue_its_own_tasks(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """The view's tasks are dropped; the ones @app.errorhandler(500) queues run."""

    @app.errorhandler(500)
    def server_error(error: HTTPException) -> tuple[str, int]:
        get_background_tasks().add_task(record, events, "report crash")
        return "sorry", 500

    @app.get("/crash")
    def crash(tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, "never")
        msg = "database down"
        raise ValueError(msg)

    response = client.get("/crash")
    assert (response.status_code, response.data) == (500, b"sorry")
    assert events == ["report crash"]


def test_abort_discards_the_view_tasks_but_the_error_handler_tasks_run(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """abort(403): the view's tasks dropped with a warning; @app.errorhandler(403)'s run."""

    @app.errorhandler(403)
    def forbidden(error: HTTPException) -> tuple[str, int]:
        get_background_tasks().add_task(record, events, "log refusal")
        return "forbidden", 403

    @app.get("/admin")
    def admin(tasks: BackgroundTasks) -> str:
        tasks.add_task(send_welcome_email, events, "ada@example.com")
        flask.abort(403)

    response = client.get("/admin")
    assert (response.status_code, response.data) == (403, b"forbidden")
    assert events == ["log refusal"]
    [warning] = warnings_of(bgtask_log)
    assert "Forbidden" in warning
    assert "tests.helpers.flasking.send_welcome_email" in warning


def test_a_view_returning_an_error_response_keeps_its_tasks(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """return "nope", 404 is a response, not a raise: the tasks run."""

    @app.get("/missing")
    def missing(tasks: BackgroundTasks) -> tuple[str, int]:
        tasks.add_task(record, events, "still runs")
        return "nope", 404

    response = client.get("/missing")
    assert (response.status_code, response.data) == (404, b"nope")
    assert events == ["still runs"]
    assert warnings_of(bgtask_log) == []


def test_a_failing_task_affects_neither_the_response_nor_the_next_request(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """The failure is logged at ERROR; the response was sent; the next request is served."""

    @app.get("/<int:number>")
    def index(number: int, tasks: BackgroundTasks) -> str:
        if number == 1:
            tasks.add_task(explode)
        tasks.add_task(record, events, f"request {number}")
        return f"response {number}"

    first = client.get("/1")
    assert (first.status_code, first.data) == (200, b"response 1")
    second = client.get("/2")
    assert (second.status_code, second.data) == (200, b"response 2")
    assert events == ["request 2"]
    errors = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert errors == ["background task tests.helpers.flasking.explode failed"]
