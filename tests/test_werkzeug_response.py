"""``response.background`` on plain Werkzeug responses, without Flask."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from bgtask import BackgroundTask, BackgroundTaskMiddleware, BackgroundTasks, get_background_tasks
from bgtask.testing import closing_client

from .recording import record, record_async, request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def send_welcome_email(events: list[str], email: str) -> None:
    events.append(f"welcome {email} ({request_id.get()})")


def signup_app(events: list[str], background: object) -> WSGIApplication:
    """A Werkzeug app whose response carries ``background``, after two queued tasks."""

    @Request.application
    def signup(request: Request) -> Response:
        email = request.args["email"]
        get_background_tasks().add_task(record, events, f"queued {email}")
        get_background_tasks().add_task(record_async, events, f"queued async {email}")
        response = Response("Signup successful")
        response.background = background  # type: ignore[attr-defined]
        return response

    return signup


@pytest.fixture
def events() -> list[str]:
    return []


def test_background_task_runs_after_the_response(events: list[str]) -> None:
    """A BackgroundTask on the response runs once the body was sent and closed."""
    app = BackgroundTaskMiddleware(
        signup_app(events, BackgroundTask(send_welcome_email, events, "ada@example.com"))
    )
    client = closing_client(Client(app))

    response = client.get("/?email=ada@example.com", buffered=False)
    assert response.get_data() == b"Signup successful"
    assert events == []  # the body is out, the response not yet closed
    response.close()
    assert events == [
        "queued ada@example.com",
        "queued async ada@example.com",
        "welcome ada@example.com (-)",
    ]


def test_background_tasks_run_in_order_after_the_queued_tasks(events: list[str]) -> None:
    """A BackgroundTasks on the response: its tasks in order, after get_background_tasks()'s."""
    background = BackgroundTasks(
        tasks=[
            BackgroundTask(record, events, "response 1"),
            BackgroundTask(record_async, events, "response 2"),
            BackgroundTask(record, events, "response 3"),
        ]
    )
    client = closing_client(Client(BackgroundTaskMiddleware(signup_app(events, background))))

    assert client.get("/?email=a@b.c").get_data() == b"Signup successful"
    assert events == [
        "queued a@b.c",
        "queued async a@b.c",
        "response 1",
        "response 2",
        "response 3",
    ]


def test_a_reused_response_runs_its_background_once_per_request(events: list[str]) -> None:
    """One response object served twice: its task runs after each, in each request's context."""
    shared = Response("cached page")
    shared.background = BackgroundTask(send_welcome_email, events, "ada@example.com")  # type: ignore[attr-defined]

    @Request.application
    def cached(request: Request) -> Response:
        request_id.set(request.args["id"])
        return shared

    client = closing_client(Client(BackgroundTaskMiddleware(cached)))
    # A fresh context per request, as a thread-per-request server gives.
    assert contextvars.Context().run(client.get, "/?id=req-1").get_data() == b"cached page"
    assert events == ["welcome ada@example.com (req-1)"]
    assert contextvars.Context().run(client.get, "/?id=req-2").get_data() == b"cached page"
    assert events == ["welcome ada@example.com (req-1)", "welcome ada@example.com (req-2)"]


def test_a_non_task_background_raises_type_error_and_discards_the_tasks(
    events: list[str], bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A plain function is not a task: TypeError in the request, nothing runs."""
    client = closing_client(
        Client(BackgroundTaskMiddleware(signup_app(events, send_welcome_email)))
    )

    with pytest.raises(TypeError, match="expected a BackgroundTask or BackgroundTasks, got"):
        client.get("/?email=a@b.c")
    assert events == []
    assert "discarded 2 background task(s)" in bgtask_log.text


def test_background_without_the_middleware_logs_that_it_will_not_run(
    events: list[str], bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Once bgtask is in use in the process, an unwrapped app's background is flagged."""
    BackgroundTaskMiddleware(Response("another app"))  # bgtask is in use in this process

    @Request.application
    def unwrapped(request: Request) -> Response:
        response = Response("ok")
        response.background = BackgroundTask(record, events, "never")  # type: ignore[attr-defined]
        return response

    assert closing_client(Client(unwrapped)).get("/").get_data() == b"ok"
    assert events == []
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "no BackgroundTaskMiddleware" in warnings[0]
    assert "will not run" in warnings[0]


FRESH_PROCESS_WITHOUT_MIDDLEWARE = textwrap.dedent(
    """
    import logging

    from werkzeug.test import Client
    from werkzeug.wrappers import Request, Response

    from bgtask import BackgroundTask
    from bgtask.testing import closing_client

    logging.basicConfig(format="%(levelname)s %(name)s %(message)s")


    @Request.application
    def app(request):
        response = Response("ok")
        response.background = BackgroundTask(print, "never")
        return response


    print(closing_client(Client(app)).get("/").get_data())
    """
)


def test_background_without_any_middleware_in_the_process_logs_a_warning() -> None:
    """An app that never installed the middleware is told its background will not run."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", FRESH_PROCESS_WITHOUT_MIDDLEWARE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == "b'ok'\n"
    assert "WARNING bgtask" in result.stderr
    assert "will not run" in result.stderr
