"""Flask views that take the request's tasks: ``get_background_tasks()`` and annotations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import flask
from flask.views import MethodView

from bgtask import (
    BackgroundTasks,
    get_background_tasks,
)
from bgtask.flask import BgTask
from bgtask.testing import closing_client

from .apps import flask_real_annotations
from .helpers.flasking import (
    send_welcome_email,
)
from .helpers.recording import record, record_async

if TYPE_CHECKING:
    from flask.testing import FlaskClient
    from flask.typing import ResponseReturnValue


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
