"""Flask's ``response.background`` and ``@background``, and all four styles in one order."""

from __future__ import annotations

import http.client
import threading
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask

from bgtask import (
    BackgroundTask,
    BackgroundTasks,
    background,
    get_background_tasks,
)
from bgtask.flask import BgTask

from .helpers.flasking import (
    send_welcome_email,
    warnings_of,
)
from .helpers.recording import record, record_async

if TYPE_CHECKING:
    import pytest
    from flask.testing import FlaskClient


# 3. Response style: response.background


def test_response_background_task_runs_after_the_tasks_the_view_queued(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """A BackgroundTask on the response is merged after the queued ones, never replacing them."""

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(record, events, "injected")
        get_background_tasks().add_task(record, events, "queued")
        response = flask.make_response("Signup successful")
        response.background = BackgroundTask(send_welcome_email, events, "ada@example.com")  # type: ignore[attr-defined]
        return response

    assert client.post("/signup").data == b"Signup successful"
    assert events == ["injected", "queued", "welcome ada@example.com"]


def test_response_background_tasks_collection_runs_in_its_order(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """BackgroundTasks on the response: its sync and async tasks, in order."""

    @app.get("/")
    def index() -> flask.Response:
        response = flask.make_response("ok")
        response.background = BackgroundTasks(  # type: ignore[attr-defined]
            tasks=[
                BackgroundTask(record, events, "response 1"),
                BackgroundTask(record_async, events, "response 2"),
                BackgroundTask(record, events, "response 3"),
            ]
        )
        return response

    client.get("/")
    assert events == ["response 1", "response 2", "response 3"]


def test_non_task_background_raises_type_error_and_discards_the_tasks(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A plain function as background: TypeError in the request (Flask logs it and answers
    500, as for a view that raised); nothing of it runs."""

    @app.get("/bad")
    def bad(tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(send_welcome_email, events, "ada@example.com")
        response = flask.make_response("ok")
        response.background = send_welcome_email  # type: ignore[attr-defined]
        return response

    errors: list[BaseException] = []
    flask.got_request_exception.connect(
        lambda sender, exception, **extra: errors.append(exception), app, weak=False
    )
    assert client.get("/bad").status_code == 500
    [error] = errors
    assert isinstance(error, TypeError)
    assert "expected a BackgroundTask or BackgroundTasks, got" in str(error)
    assert events == []
    [warning] = warnings_of(bgtask_log)
    assert "tests.helpers.flasking.send_welcome_email" in warning


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_non_task_background_is_a_500_under_a_real_server(events: list[str]) -> None:
    """Served by wsgiref over a socket, the TypeError becomes a 500 response."""
    app = flask.Flask(__name__)
    BgTask(app)

    @app.get("/bad")
    def bad(tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(record, events, "never")
        response = flask.make_response("ok")
        response.background = "not a task"  # type: ignore[attr-defined]
        return response

    with make_server("127.0.0.1", 0, app, handler_class=_QuietHandler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        try:
            connection.request("GET", "/bad")
            status = connection.getresponse().status
        finally:
            connection.close()
            thread.join(10)
    assert status == 500
    assert events == []


# 4. Decorator style: @background(...)


def test_decorator_task_runs_after_each_response_of_a_sync_view(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """@background(BackgroundTask(...)) under @app.route: once per request."""

    @app.route("/ping")
    @background(BackgroundTask(record, events, "decorator"))
    def ping() -> str:
        return "pong"

    assert client.get("/ping").data == b"pong"
    assert client.get("/ping").data == b"pong"
    assert events == ["decorator", "decorator"]


def test_decorator_tasks_collection_runs_after_the_queued_tasks(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """@background(BackgroundTasks(tasks=[...])) under @app.get, after what the view queued."""

    @app.get("/users/<name>")
    @background(
        BackgroundTasks(
            tasks=[
                BackgroundTask(record, events, "decorator 1"),
                BackgroundTask(record_async, events, "decorator 2"),
            ]
        )
    )
    def user(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"queued {name}")
        return name

    assert client.get("/users/ada").data == b"ada"
    assert events == ["queued ada", "decorator 1", "decorator 2"]


def test_decorator_on_an_async_view(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """An async def view keeps working under @background, its tasks after the queued ones."""

    @app.get("/async-decorated/<name>")
    @background(BackgroundTask(record_async, events, "decorator"))
    async def async_decorated(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"queued {name}")
        return name

    assert client.get("/async-decorated/ada").data == b"ada"
    assert events == ["queued ada", "decorator"]


# Order of all four styles


def test_all_four_styles_merge_in_order(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Queued during the request in call order, then response.background, then @background."""

    def audit(email: str) -> None:
        get_background_tasks().add_task(record, events, f"helper {email}")

    @app.post("/signup/<email>")
    @background(
        BackgroundTask(record, events, "decorator 1"),
        BackgroundTasks(tasks=[BackgroundTask(record_async, events, "decorator 2")]),
    )
    def signup(email: str, tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(record, events, "injected 1")
        audit(email)
        tasks.add_task(record_async, events, "injected 2")
        response = flask.make_response("ok")
        response.background = BackgroundTasks(  # type: ignore[attr-defined]
            tasks=[
                BackgroundTask(record, events, "response 1"),
                BackgroundTask(record_async, events, "response 2"),
            ]
        )
        get_background_tasks().add_task(record, events, "queued after the response was built")
        return response

    assert client.post("/signup/ada").data == b"ok"
    assert events == [
        "injected 1",
        "helper ada",
        "injected 2",
        "queued after the response was built",
        "response 1",
        "response 2",
        "decorator 1",
        "decorator 2",
    ]
