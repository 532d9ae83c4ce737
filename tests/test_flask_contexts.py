"""What a Flask task sees: a fresh app context of its own, no request, the request's contextvars."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

import flask
import pytest

from bgtask import (
    BackgroundTask,
    BackgroundTasks,
    background,
)

from .helpers.flasking import (
    record_app,
    record_app_async,
    record_request_id,
)
from .helpers.recording import record, request_id

if TYPE_CHECKING:
    from flask.testing import FlaskClient


# Contexts


def test_sync_and_async_tasks_see_current_app_and_its_config(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """current_app and app.config work in tasks, which run after the request context ended."""
    app.config["GREETING"] = "hello"

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(record_app, events)
        tasks.add_task(record_app_async, events)
        return "ok"

    client.get("/")
    assert events == [f"{app.name} hello", f"async {app.name} hello"]


def test_tasks_get_a_fresh_g_and_teardown_appcontext_runs_after_them(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """The request's g is not the task's; each task's app context tears down after it."""

    def use_g(events: list[str]) -> None:
        events.append(f"task sees g.role={flask.g.get('role')}")
        flask.g.role = "task"

    @app.teardown_appcontext
    def teardown(error: BaseException | None) -> None:
        events.append(f"teardown {flask.g.get('role')}")

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        flask.g.role = "view"
        tasks.add_task(use_g, events)
        tasks.add_task(record, events, "second task")
        return "ok"

    client.get("/")
    assert events == [
        "teardown view",  # the request's own app context, popped before the response is sent
        "task sees g.role=None",
        "teardown task",
        "second task",
        "teardown None",
    ]


def test_tasks_run_without_a_request_context(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """has_request_context() is False in a task, and flask.request raises RuntimeError."""

    def inspect_request(events: list[str]) -> None:
        events.append(f"has_request_context={flask.has_request_context()}")
        events.append(f"has_app_context={flask.has_app_context()}")
        with pytest.raises(RuntimeError, match="outside of request context"):
            events.append(flask.request.path)
        events.append("request raised RuntimeError")

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(inspect_request, events)
        return "ok"

    client.get("/")
    assert events == [
        "has_request_context=False",
        "has_app_context=True",
        "request raised RuntimeError",
    ]


def test_a_request_scoped_contextvar_reaches_the_tasks(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """A request id set in the view is seen by queued, response and decorator tasks."""

    @app.get("/sync/<rid>")
    @background(BackgroundTask(record_request_id, events, "decorator"))
    def sync_view(rid: str, tasks: BackgroundTasks) -> flask.Response:
        request_id.set(rid)
        tasks.add_task(record_request_id, events, "queued")
        response = flask.make_response("ok")
        response.background = BackgroundTask(record_request_id, events, "response")  # type: ignore[attr-defined]
        return response

    @app.get("/async/<rid>")
    async def async_view(rid: str, tasks: BackgroundTasks) -> str:
        request_id.set(rid)
        tasks.add_task(record_request_id, events, "async view")
        return "ok"

    # A fresh context per request, as a thread-per-request server gives.
    contextvars.Context().run(client.get, "/sync/req-1")
    contextvars.Context().run(client.get, "/async/req-2")
    assert events == ["queued req-1", "response req-1", "decorator req-1", "async view req-2"]
