"""``response.background`` on Werkzeug responses, without Flask: explicit, never patched in."""

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
from bgtask.werkzeug import BackgroundResponse

from .helpers.recording import record, record_async, request_id

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
        response = BackgroundResponse("Signup successful")
        response.background = background  # type: ignore[assignment]
        return response

    return signup


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
    shared = BackgroundResponse("cached page")
    shared.background = BackgroundTask(send_welcome_email, events, "ada@example.com")

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
    assert bgtask_log.text.count(" discarded: the application raised TypeError") == 2


def test_background_without_the_middleware_logs_that_it_will_not_run(
    events: list[str], bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A BackgroundResponse served by an app without the middleware says so."""

    @Request.application
    def unwrapped(request: Request) -> Response:
        response = BackgroundResponse("ok")
        response.background = BackgroundTask(record, events, "never")
        return response

    assert closing_client(Client(unwrapped)).get("/").get_data() == b"ok"
    assert events == []
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "no BackgroundTaskMiddleware" in warnings[0]
    assert "will not run" in warnings[0]


def test_background_on_a_plain_werkzeug_response_is_reported_not_lost_in_silence(
    events: list[str], bgtask_log: pytest.LogCaptureFixture
) -> None:
    """bgtask patches nothing: a plain Response's background does not run, with a WARNING
    saying what to use instead."""

    @Request.application
    def plain(request: Request) -> Response:
        get_background_tasks().add_task(record, events, "queued")
        response = Response("ok")
        response.background = BackgroundTask(record, events, "never")  # type: ignore[attr-defined]
        return response

    client = closing_client(Client(BackgroundTaskMiddleware(plain)))
    assert client.get("/").get_data() == b"ok"
    assert events == ["queued"]
    [warning] = [r.getMessage() for r in bgtask_log.records if r.levelname == "WARNING"]
    assert "its tasks will not run" in warning
    assert "bgtask.werkzeug.BackgroundResponse" in warning
    assert "enable_response_background()" in warning


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_enable_response_background_makes_plain_responses_run_their_background() -> None:
    """The explicit, process-wide opt-in for apps that cannot change their response class."""
    result = run_script(
        """
        from werkzeug.test import Client
        from werkzeug.wrappers import Request, Response
        from bgtask import BackgroundTask, BackgroundTaskMiddleware
        from bgtask.testing import closing_client
        from bgtask.werkzeug import enable_response_background

        enable_response_background()
        ran = []

        @Request.application
        def app(request):
            response = Response("ok")
            response.background = BackgroundTask(ran.append, "background")
            return response

        closing_client(Client(BackgroundTaskMiddleware(app))).get("/")
        print(ran)
        """
    )
    assert result.stdout == "['background']\n"


@pytest.mark.parametrize("first", ["bgtask", "werkzeug"])
def test_no_import_patches_werkzeug_and_the_order_changes_nothing(first: str) -> None:
    """bgtask before or after Werkzeug: Response.__call__ untouched; Flask's and a
    BackgroundResponse's background run; a plain Werkzeug one is reported."""
    result = run_script(
        f"""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
        if {first!r} == "bgtask":
            import bgtask, bgtask.flask, bgtask.werkzeug
        import werkzeug.wrappers, flask
        original = werkzeug.wrappers.Response.__call__
        import bgtask, bgtask.flask, bgtask.werkzeug
        from werkzeug.test import Client
        from werkzeug.wrappers import Request, Response
        from bgtask import BackgroundTask, BackgroundTaskMiddleware
        from bgtask.testing import closing_client
        from bgtask.werkzeug import BackgroundResponse

        ran = []
        app = flask.Flask("app")
        bgtask.flask.BgTask(app)

        @app.get("/")
        def index():
            response = flask.make_response("ok")
            response.background = BackgroundTask(ran.append, "flask")
            return response

        @Request.application
        def typed(request):
            response = BackgroundResponse("ok")
            response.background = BackgroundTask(ran.append, "BackgroundResponse")
            return response

        @Request.application
        def plain(request):
            response = Response("ok")
            response.background = BackgroundTask(ran.append, "plain")
            return response

        closing_client(app.test_client()).get("/")
        closing_client(Client(BackgroundTaskMiddleware(typed))).get("/")
        closing_client(Client(BackgroundTaskMiddleware(plain))).get("/")
        print(ran)
        print("patched" if werkzeug.wrappers.Response.__call__ is not original else "untouched")
        """
    )
    lines = result.stdout.splitlines()
    assert lines[-2:] == ["['flask', 'BackgroundResponse']", "untouched"]
    assert any(
        line.startswith("WARNING response.background is set on a Response") for line in lines
    )
