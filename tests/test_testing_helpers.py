"""``bgtask.testing``: tasks run under Werkzeug's and Flask's test clients, and capture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import flask
import pytest
from werkzeug.test import Client

from bgtask import BackgroundTaskMiddleware, get_background_tasks
from bgtask.testing import QueuedTask, capture_tasks, closing_client

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

events: list[str] = []


def send_welcome_email(email: str, *, subject: str = "Welcome") -> None:
    events.append(f"{subject} {email}")


async def log_signup(email: str) -> None:
    events.append(f"logged {email}")


def signup(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    get_background_tasks().add_task(send_welcome_email, "a@b.c", subject="Hi")
    get_background_tasks().add_task(log_signup, "a@b.c")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"signed up"]


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    events.clear()


@pytest.fixture
def flask_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.post("/signup")
    def flask_signup() -> str:
        get_background_tasks().add_task(send_welcome_email, "a@b.c")
        return "signed up"

    app.wsgi_app = BackgroundTaskMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def test_werkzeug_client_without_closing_never_runs_tasks(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """The pitfall closing_client fixes: Werkzeug's Client does not close responses."""
    response = Client(BackgroundTaskMiddleware(signup)).get("/")
    assert response.get_data() == b"signed up"
    assert events == []
    response.close()  # only an explicit close runs them
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_closing_werkzeug_client_runs_tasks_before_the_call_returns() -> None:
    """One line: closing_client(Client(app))."""
    client = closing_client(Client(BackgroundTaskMiddleware(signup)))
    assert client.get("/").get_data() == b"signed up"
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_closing_flask_test_client_runs_tasks_before_the_call_returns(
    flask_app: flask.Flask,
) -> None:
    """One line: closing_client(app.test_client())."""
    client = closing_client(flask_app.test_client())
    assert client.post("/signup").get_data() == b"signed up"
    assert events == ["Welcome a@b.c"]


def test_flask_test_client_without_closing_never_runs_tasks(flask_app: flask.Flask) -> None:
    """Flask's test client shares the pitfall."""
    response = flask_app.test_client().post("/signup")
    assert response.get_data() == b"signed up"
    assert events == []
    response.close()
    assert events == ["Welcome a@b.c"]


def test_closing_client_lets_a_call_ask_for_an_unbuffered_response() -> None:
    """buffered=False in one call still wins, for tests that stream."""
    client = closing_client(Client(BackgroundTaskMiddleware(signup)))
    response = client.get("/", buffered=False)
    assert events == []
    response.close()
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_capture_tasks_records_what_requests_queued_in_order() -> None:
    """Function, args and kwargs, as given to add_task; the tasks still run."""
    client = closing_client(Client(BackgroundTaskMiddleware(signup)))
    with capture_tasks() as queued:
        client.get("/")
    assert queued == [
        QueuedTask(send_welcome_email, ("a@b.c",), {"subject": "Hi"}),
        QueuedTask(log_signup, ("a@b.c",), {}),
    ]
    assert queued.funcs == [send_welcome_email, log_signup]
    assert queued.queued(send_welcome_email, "a@b.c", subject="Hi")
    assert not queued.queued(send_welcome_email, "other@b.c", subject="Hi")
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_capture_tasks_with_run_false_records_without_running() -> None:
    """run=False: the test sees what was queued, and nothing runs."""
    client = closing_client(Client(BackgroundTaskMiddleware(signup)))
    with capture_tasks(run=False) as queued:
        client.get("/")
    assert queued.funcs == [send_welcome_email, log_signup]
    assert events == []
    client.get("/")  # outside the block, tasks run again
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_capture_tasks_sees_only_the_block() -> None:
    """Requests before and after the block are not recorded."""
    client = closing_client(Client(BackgroundTaskMiddleware(signup)))
    client.get("/")
    with capture_tasks() as queued:
        pass
    client.get("/")
    assert queued == []
