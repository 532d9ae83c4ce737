"""``BgTask``: installing on an app, several apps, async tasks, files, no per-request growth."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import TYPE_CHECKING

import flask
import pytest
from werkzeug.wsgi import FileWrapper

from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    drain,
    get_background_tasks,
)
from bgtask.flask import BgTask
from bgtask.testing import closing_client

from .helpers.flasking import (
    record_app,
    record_app_async,
)
from .helpers.recording import record, record_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from flask.testing import FlaskClient


# Installation


def test_bgtask_installs_the_wsgi_layer_on_wsgi_app(events: list[str]) -> None:
    """BgTask(app) wraps app.wsgi_app in the middleware and registers itself."""
    app = flask.Flask(__name__)
    extension = BgTask(app)

    @app.get("/")
    def index() -> str:
        get_background_tasks().add_task(record, events, "ran")
        return "ok"

    assert isinstance(app.wsgi_app, BackgroundTaskMiddleware)
    assert app.extensions["bgtask"] is extension
    assert closing_client(app.test_client()).get("/").data == b"ok"
    assert events == ["ran"]


def test_init_app_installs_on_an_app_created_later(events: list[str]) -> None:
    """BgTask() then init_app(app), the application-factory pattern."""
    extension = BgTask()
    app = flask.Flask(__name__)
    extension.init_app(app)

    @app.get("/<name>")
    def hello(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"hello {name}")
        return "ok"

    closing_client(app.test_client()).get("/ada")
    assert events == ["hello ada"]


def test_init_app_twice_is_harmless_and_tasks_run_once(events: list[str]) -> None:
    """A second init_app, on the same or another BgTask, installs nothing more."""
    app = flask.Flask(__name__)
    extension = BgTask(app)
    extension.init_app(app)
    BgTask().init_app(app)

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, "once")
        return "ok"

    client = closing_client(app.test_client())
    client.get("/")
    assert events == ["once"]
    assert app.extensions["bgtask"] is extension
    assert isinstance(app.wsgi_app, BackgroundTaskMiddleware)
    assert not isinstance(app.wsgi_app.app, BackgroundTaskMiddleware)


# Async tasks, files, several apps


def test_async_tasks_run_from_sync_and_async_views(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """An async def task works whether the view is sync or async, in order with sync tasks."""

    @app.get("/sync")
    def sync_view(tasks: BackgroundTasks) -> str:
        tasks.add_task(record_async, events, "sync view, async task")
        tasks.add_task(record, events, "sync view, sync task")
        return "ok"

    @app.get("/async")
    async def async_view() -> str:
        get_background_tasks().add_task(record, events, "async view, sync task")
        get_background_tasks().add_task(record_async, events, "async view, async task")
        return "ok"

    client.get("/sync")
    client.get("/async")
    assert events == [
        "sync view, async task",
        "sync view, sync task",
        "async view, sync task",
        "async view, async task",
    ]


@pytest.mark.parametrize(
    "environ_overrides",
    [{}, {"wsgi.file_wrapper": FileWrapper}],
    ids=["no-server-file-wrapper", "server-file-wrapper"],
)
def test_send_file_response_runs_its_tasks_with_the_file_intact(
    app: flask.Flask,
    client: FlaskClient,
    events: list[str],
    tmp_path: Path,
    environ_overrides: dict[str, object],
) -> None:
    """send_file bypasses call_on_close; the WSGI layer still runs the tasks after the body."""
    report = tmp_path / "report.csv"
    content = b"".join(b"%d,row\n" % number for number in range(20_000))
    report.write_bytes(content)

    @app.get("/report")
    def download(tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(record, events, "delete report")
        response = flask.send_file(report)
        response.background = BackgroundTask(record_async, events, "log download")  # type: ignore[attr-defined]
        return response

    response = client.get("/report", environ_overrides=environ_overrides)
    assert response.status_code == 200
    assert response.data == content
    assert events == ["delete report", "log download"]


def test_two_apps_run_their_own_tasks_in_their_own_app_context(events: list[str]) -> None:
    """Each app's tasks see that app as current_app, with its config."""
    apps = [flask.Flask("first"), flask.Flask("second")]
    for app, greeting in zip(apps, ["hello", "bonjour"], strict=True):
        app.config["GREETING"] = greeting
        BgTask(app)

        @app.get("/")
        def index(tasks: BackgroundTasks) -> str:
            tasks.add_task(record_app, events)
            tasks.add_task(record_app_async, events)
            return flask.current_app.name

    first, second = (closing_client(app.test_client()) for app in apps)
    assert first.get("/").data == b"first"
    assert second.get("/").data == b"second"
    assert first.get("/").data == b"first"
    assert events == [
        "first hello",
        "async first hello",
        "second bonjour",
        "async second bonjour",
        "first hello",
        "async first hello",
    ]


@pytest.mark.slow
def test_per_request_closures_are_not_kept_after_100000_requests() -> None:
    """after_this_request and copy_current_request_context functions die with their request."""
    app = flask.Flask(__name__)
    BgTask(app)
    alive: weakref.WeakSet[Callable[..., object]] = weakref.WeakSet()

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        @flask.after_this_request
        def after(response: flask.Response) -> flask.Response:
            return response

        @flask.copy_current_request_context
        def copied() -> None: ...

        alive.add(after)
        alive.add(copied)
        tasks.add_task(copied)
        return "ok"

    client = closing_client(app.test_client())
    for _ in range(100_000):
        assert client.get("/").status_code == 200
    gc.collect()
    assert len(alive) == 0, f"{len(alive)} per-request closures are still referenced"


def test_a_view_taking_tasks_on_an_app_without_bgtask_says_what_to_do() -> None:
    """Flask's bare "missing 1 required positional argument" gets a note naming the fix."""
    import bgtask.flask  # noqa: F401 (the hint is installed with the module)

    app = flask.Flask(__name__)
    app.testing = True  # the exception reaches the test

    @app.get("/")
    def index(background_tasks: BackgroundTasks) -> str:
        return "never"

    with pytest.raises(TypeError) as raised:
        app.test_client().get("/")
    notes = getattr(raised.value, "__notes__", [])
    assert len(notes) == 1
    assert "takes a BackgroundTasks parameter (background_tasks)" in notes[0]
    assert "BgTask(app)" in notes[0]


@pytest.mark.parametrize(
    ("config", "ran_on_the_request_thread"),
    [({}, True), ({"BGTASK_OFFLOAD": True}, False), ({"BGTASK_OFFLOAD_THREADS": 2}, False)],
    ids=["inline", "offload", "pool-of-its-own"],
)
def test_app_config_chooses_where_tasks_run(
    config: dict[str, object], ran_on_the_request_thread: bool
) -> None:
    """BGTASK_OFFLOAD / BGTASK_OFFLOAD_THREADS in app.config, read by init_app."""
    threads: list[int] = []
    app = flask.Flask(__name__)
    app.config.update(config)
    BgTask(app)

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(lambda: threads.append(threading.get_ident()))
        return "ok"

    app.test_client().get("/")
    assert drain(timeout=10)
    assert (threads == [threading.get_ident()]) is ran_on_the_request_thread


def test_keyword_arguments_win_over_the_config() -> None:
    """BgTask(app, offload=False) runs inline even with BGTASK_OFFLOAD in the config."""
    threads: list[int] = []
    app = flask.Flask(__name__)
    app.config["BGTASK_OFFLOAD"] = True
    BgTask(app, offload=False)

    @app.get("/")
    def index(tasks: BackgroundTasks) -> str:
        tasks.add_task(lambda: threads.append(threading.get_ident()))
        return "ok"

    app.test_client().get("/")
    assert threads == [threading.get_ident()]


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"BGTASK_OFFLOAD": "yes"}, "app.config\\['BGTASK_OFFLOAD'\\] must be True or False"),
        ({"BGTASK_OFFLOAD_THREADS": "8"}, "'BGTASK_OFFLOAD_THREADS'\\] must be a whole number"),
    ],
)
def test_a_bad_config_value_is_refused_naming_the_key(
    config: dict[str, object], error: str
) -> None:
    """A clear TypeError at init_app, before anything is installed."""
    app = flask.Flask(__name__)
    app.config.update(config)
    with pytest.raises(TypeError, match=error):
        BgTask(app)
    assert "bgtask" not in app.extensions
