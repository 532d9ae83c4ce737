"""``bgtask.testing``: tasks run under Werkzeug's and Flask's test clients, and capture."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import flask
import flask.testing
import pytest
from werkzeug.test import Client

from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask.flask import BgTask
from bgtask.testing import QueuedTask, TasksNotRun, capture_tasks, closing_client

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


# -- tests must not pass when tasks never ran ---------------------------------------------


def test_a_capture_whose_requests_tasks_never_ran_fails_naming_them_and_the_fix() -> None:
    """A plain Werkzeug client never closes: the block raises TasksNotRun, not a WARNING."""
    client = Client(BackgroundTaskMiddleware(signup))
    with pytest.raises(TasksNotRun) as raised, capture_tasks() as queued:  # noqa: PT012
        response = client.get("/")
        assert response.get_data() == b"signed up"
    assert queued.funcs == [send_welcome_email, log_signup]
    message = str(raised.value)
    assert message.startswith("2 background tasks queued during capture_tasks() never ran: ")
    assert "test_testing_helpers.send_welcome_email" in message
    assert "closing_client" in message
    assert events == []


def test_a_capture_with_a_dropped_unclosed_response_fails_too() -> None:
    """The response was garbage-collected without close(): its tasks were not run either."""
    with pytest.raises(TasksNotRun), capture_tasks():  # noqa: PT012 (the block is the point)
        Client(BackgroundTaskMiddleware(signup)).get("/")
        gc.collect()


def test_a_capture_waits_for_offloaded_tasks_before_judging() -> None:
    """Offloaded tasks still running at the end of the block are waited for, then pass."""
    app = BackgroundTaskMiddleware(signup, offload=OffloadPool(threads=1))
    with capture_tasks():
        closing_client(Client(app)).get("/")
    assert events == ["Hi a@b.c", "logged a@b.c"]


def test_a_view_that_raised_discarded_its_tasks_on_purpose_and_the_capture_passes() -> None:
    """Discarded is not "never ran by mistake": the capture does not fail for it."""

    def broken(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(send_welcome_email, "a@b.c")
        msg = "database down"
        raise RuntimeError(msg)

    with capture_tasks() as queued, pytest.raises(RuntimeError):
        closing_client(Client(BackgroundTaskMiddleware(broken))).get("/")
    assert queued.funcs == [send_welcome_email]


def test_queued_compares_calls_bound_to_the_functions_signature() -> None:
    """f("a") and f(email="a") are one call; so is f("a") and f("a", subject="Welcome")."""

    def by_keyword(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(send_welcome_email, email="a@b.c")
        start_response("200 OK", [])
        return [b"ok"]

    with capture_tasks() as queued:
        closing_client(Client(BackgroundTaskMiddleware(by_keyword))).get("/")
    assert queued.queued(send_welcome_email, "a@b.c")
    assert queued.queued(send_welcome_email, email="a@b.c", subject="Welcome")
    assert not queued.queued(send_welcome_email, "a@b.c", subject="Hi")
    assert not queued.queued(log_signup, "a@b.c")


def test_flask_with_bgtask_runs_tasks_under_the_plain_test_client() -> None:
    """app.test_client() closes its responses once BgTask(app) is installed."""
    app = flask.Flask(__name__)
    BgTask(app)

    @app.post("/signup")
    def flask_signup() -> str:
        get_background_tasks().add_task(send_welcome_email, "a@b.c")
        return "signed up"

    with capture_tasks():
        assert app.test_client().post("/signup").get_data() == b"signed up"
    assert events == ["Welcome a@b.c"]
    streaming = app.test_client().post("/signup", buffered=False)
    assert events == ["Welcome a@b.c"]
    streaming.close()
    assert events == ["Welcome a@b.c", "Welcome a@b.c"]


def test_flask_keeps_a_test_client_class_the_app_set() -> None:
    """BgTask does not replace a test client class of the app's own."""

    class MyClient(flask.testing.FlaskClient):
        pass

    app = flask.Flask(__name__)
    app.test_client_class = MyClient
    BgTask(app)
    assert type(app.test_client()) is MyClient
