"""``bgtask.flask``: four styles of queuing tasks, merged in one ordered queue per request."""

from __future__ import annotations

import contextvars
import gc
import http.client
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Annotated
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask
import pytest
from flask.views import MethodView
from werkzeug.wsgi import FileWrapper

from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    background,
    get_background_tasks,
)
from bgtask.flask import BgTask
from bgtask.testing import closing_client

from .apps import flask_real_annotations
from .helpers.recording import record, record_async, request_id

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from flask.testing import FlaskClient
    from flask.typing import ResponseReturnValue
    from werkzeug.exceptions import HTTPException


def send_welcome_email(events: list[str], email: str) -> None:
    events.append(f"welcome {email}")


def explode() -> None:
    msg = "smtp down"
    raise RuntimeError(msg)


def record_app(events: list[str]) -> None:
    events.append(f"{flask.current_app.name} {flask.current_app.config['GREETING']}")


async def record_app_async(events: list[str]) -> None:
    events.append(f"async {flask.current_app.name} {flask.current_app.config['GREETING']}")


def record_request_id(events: list[str], label: str) -> None:
    events.append(f"{label} {request_id.get()}")


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def app() -> flask.Flask:
    app = flask.Flask(__name__)
    BgTask(app)
    return app


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    return closing_client(app.test_client())


def warnings_of(log: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in log.records
        if record.name == "bgtask" and record.levelno == logging.WARNING
    ]


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


# 1. FastAPI style: get_background_tasks()


def test_view_and_its_helpers_queue_on_one_collection_in_call_order(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """get_background_tasks() in the view, a dependency and a nested helper: one collection."""
    seen: list[BackgroundTasks] = []

    def audit(action: str) -> None:
        tasks = get_background_tasks()
        seen.append(tasks)
        tasks.add_task(record, events, f"audit {action}")

    def current_user() -> str:
        tasks = get_background_tasks()
        seen.append(tasks)
        tasks.add_task(record, events, "load user")
        audit("login")
        return "ada"

    @app.post("/signup")
    def signup() -> str:
        tasks = get_background_tasks()
        seen.append(tasks)
        tasks.add_task(record, events, "view first")
        user = current_user()
        tasks.add_task(record, events, f"view last {user}")
        return "signed up"

    assert client.post("/signup").data == b"signed up"
    assert events == ["view first", "load user", "audit login", "view last ada"]
    assert seen[0] is seen[1] is seen[2]


# 2. Injection by annotation


def test_annotated_parameter_receives_the_request_collection(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Any name, next to URL parameters; the very object get_background_tasks() returns."""
    identical: list[bool] = []

    @app.post("/send-notification/<email>")
    def send_notification(email: str, background_work: BackgroundTasks) -> dict[str, str]:
        identical.append(background_work is get_background_tasks())
        background_work.add_task(send_welcome_email, events, email)
        return {"message": f"Notification sent to {email}"}

    response = client.post("/send-notification/ada@example.com")
    assert response.json == {"message": "Notification sent to ada@example.com"}
    assert events == ["welcome ada@example.com"]
    assert identical == [True]


def test_each_request_gets_a_fresh_injected_collection(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Two requests: two collections, each running only its own tasks."""
    injected: list[BackgroundTasks] = []

    @app.get("/<int:number>")
    def count(number: int, tasks: BackgroundTasks) -> str:
        injected.append(tasks)
        tasks.add_task(record, events, f"request {number}")
        return "ok"

    client.get("/1")
    client.get("/2")
    assert events == ["request 1", "request 2"]
    assert injected[0] is not injected[1]


def test_views_registered_before_init_app_are_injected(events: list[str]) -> None:
    """The injection does not depend on when the route was added."""
    app = flask.Flask(__name__)

    @app.get("/early/<name>")
    def early(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"early {name}")
        return "early"

    BgTask(app)

    @app.get("/late/<name>")
    def late(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"late {name}")
        return "late"

    client = closing_client(app.test_client())
    assert client.get("/early/a").data == b"early"
    assert client.get("/late/b").data == b"late"
    assert events == ["early a", "late b"]


def test_blueprints_registered_before_and_after_init_app_are_injected(
    events: list[str],
) -> None:
    """Blueprint views get the collection, whenever the blueprint was registered."""
    app = flask.Flask(__name__)
    before = flask.Blueprint("before", __name__, url_prefix="/before")
    after = flask.Blueprint("after", __name__, url_prefix="/after")

    @before.get("/<name>")
    def before_view(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"before {name}")
        return "before"

    @after.get("/<name>")
    def after_view(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"after {name}")
        return "after"

    app.register_blueprint(before)
    BgTask(app)
    app.register_blueprint(after)

    client = closing_client(app.test_client())
    assert client.get("/before/a").data == b"before"
    assert client.get("/after/b").data == b"after"
    assert events == ["before a", "after b"]


def test_method_view_methods_are_injected_and_head_falls_back_to_get(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """MethodView get and post get the collection; HEAD runs get's, with its tasks."""

    class Notifications(MethodView):
        def get(self, user: str, tasks: BackgroundTasks) -> str:
            tasks.add_task(record, events, f"get {user}")
            return "listed"

        def post(self, user: str, tasks: BackgroundTasks) -> str:
            tasks.add_task(record, events, f"post {user}")
            return "created"

    app.add_url_rule("/notifications/<user>", view_func=Notifications.as_view("notifications"))

    assert client.get("/notifications/ada").data == b"listed"
    assert client.post("/notifications/ada").data == b"created"
    head = client.head("/notifications/bob")
    assert head.status_code == 200
    assert head.data == b""
    assert events == ["get ada", "post ada", "get bob"]


def test_async_view_is_injected(app: flask.Flask, client: FlaskClient, events: list[str]) -> None:
    """async def views (flask[async]) get the same collection as get_background_tasks()."""
    identical: list[bool] = []

    @app.get("/async/<name>")
    async def notify(name: str, tasks: BackgroundTasks) -> str:
        identical.append(tasks is get_background_tasks())
        tasks.add_task(record, events, f"async view {name}")
        tasks.add_task(record_async, events, "async task")
        return "ok"

    assert client.get("/async/ada").data == b"ok"
    assert events == ["async view ada", "async task"]
    assert identical == [True]


def test_string_annotations_are_resolved(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """With from __future__ import annotations the annotation is a string; it still works."""

    @app.get("/string")
    def string_annotated(tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, "string")
        return "ok"

    assert string_annotated.__annotations__["tasks"] == "BackgroundTasks"
    client.get("/string")
    assert events == ["string"]


def test_string_annotation_is_injected_when_another_annotation_cannot_be_evaluated(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """A return type imported only under TYPE_CHECKING does not stop the injection."""

    @app.get("/typed")
    def typed(tasks: BackgroundTasks) -> ResponseReturnValue:
        tasks.add_task(record, events, "typed")
        return "ok"

    assert client.get("/typed").data == b"ok"
    assert events == ["typed"]


def test_annotated_background_tasks_is_injected(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Annotated[BackgroundTasks, ...] counts as BackgroundTasks."""

    @app.get("/annotated/<name>")
    def annotated(name: str, tasks: Annotated[BackgroundTasks, "queued after"]) -> str:
        tasks.add_task(record, events, f"annotated {name}")
        return "ok"

    client.get("/annotated/ada")
    assert events == ["annotated ada"]


def test_annotated_string_is_injected_when_another_annotation_cannot_be_evaluated(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Annotated[BackgroundTasks, ...] next to a TYPE_CHECKING-only return type."""

    @app.get("/annotated-typed")
    def annotated_typed(tasks: Annotated[BackgroundTasks, "doc"]) -> ResponseReturnValue:
        tasks.add_task(record, events, "annotated typed")
        return "ok"

    assert client.get("/annotated-typed").status_code == 200
    assert events == ["annotated typed"]


def test_two_parameters_get_the_same_collection(
    app: flask.Flask, client: FlaskClient, events: list[str]
) -> None:
    """Both parameters receive the one collection; tasks keep their call order."""
    identical: list[bool] = []

    @app.get("/two")
    def two(first: BackgroundTasks, second: Annotated[BackgroundTasks, "again"]) -> str:
        identical.append(first is second is get_background_tasks())
        first.add_task(record, events, "first")
        second.add_task(record, events, "second")
        first.add_task(record, events, "third")
        return "ok"

    client.get("/two")
    assert identical == [True]
    assert events == ["first", "second", "third"]


def test_real_class_annotations_are_injected(events: list[str]) -> None:
    """Views from a module without the __future__ import: plain, Annotated, async, MethodView."""
    app = flask.Flask(__name__)
    BgTask(app)
    flask_real_annotations.register_views(app, events)
    assert app.view_functions["real_plain"].__annotations__["tasks"] is BackgroundTasks

    client = closing_client(app.test_client())
    assert client.get("/real/ada").data == b"plain"
    assert client.get("/real-annotated").data == b"annotated"
    assert client.get("/real-async").data == b"async"
    assert client.get("/real-items").data == b"get"
    assert client.post("/real-items").data == b"post"
    assert client.head("/real-items").status_code == 200
    assert events == [
        "plain ada",
        "annotated",
        "async",
        "method view get",
        "method view post",
        "method view get",
    ]


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
    assert "tests.test_flask.send_welcome_email" in warning


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
        "background task tests.test_flask.send_welcome_email discarded: the view raised ValueError",
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
    assert "tests.test_flask.send_welcome_email" in warning


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
    assert errors == ["background task tests.test_flask.explode failed"]


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
