"""bgtask's pytest fixtures, as a user's own test suite sees them (a pytest in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

USER_TESTS = """
    import flask
    from werkzeug.test import Client
    from bgtask import BackgroundTaskMiddleware, get_background_tasks
    from bgtask.flask import BgTask

    sent = []

    def send_welcome_email(email):
        sent.append(email)

    def signup(environ, start_response):
        get_background_tasks().add_task(send_welcome_email, email="a@b.c")
        start_response("200 OK", [])
        return [b"ok"]

    wsgi_app = BackgroundTaskMiddleware(signup)
    flask_app = flask.Flask(__name__)
    BgTask(flask_app)

    @flask_app.post("/signup")
    def flask_signup(tasks: "bgtask.BackgroundTasks"):
        tasks.add_task(send_welcome_email, "f@b.c")
        return "ok"

    def test_wsgi_app_with_the_closing_client(bgtask_client, bgtask_tasks):
        bgtask_client(wsgi_app).get("/")
        assert bgtask_tasks.queued(send_welcome_email, "a@b.c")

    def test_flask_app_with_the_closing_client(bgtask_client, bgtask_tasks):
        bgtask_client(flask_app).post("/signup")
        assert sent[-1] == "f@b.c"

    def test_tasks_not_run(bgtask_client, bgtask_tasks_not_run):
        before = len(sent)
        bgtask_client(wsgi_app).get("/")
        assert bgtask_tasks_not_run.funcs == [send_welcome_email]
        assert len(sent) == before

    def test_a_client_that_never_closes(bgtask_tasks):
        Client(wsgi_app).get("/")  # the tasks never run: the fixture fails the test

    def test_asking_for_nothing():
        pass
"""


def test_the_fixtures_work_in_a_users_suite_and_fail_a_test_whose_tasks_never_ran(
    tmp_path: Path,
) -> None:
    """Four pass; the one whose client never closed errors at teardown, saying why (pytest
    counts its call as passed and the teardown as an error)."""
    (tmp_path / "test_users.py").write_text("import bgtask\n" + textwrap.dedent(USER_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    summary = result.stdout.splitlines()[-1]
    assert "5 passed, 1 error" in summary, result.stdout
    assert "ERROR at teardown of test_a_client_that_never_closes" in result.stdout
    assert "TasksNotRun: 1 background task queued during capture_tasks() never ran" in (
        result.stdout
    )


@pytest.mark.parametrize("name", ["bgtask_tasks", "bgtask_tasks_not_run", "bgtask_client"])
def test_the_plugin_is_registered_with_pytest(name: str, request: pytest.FixtureRequest) -> None:
    """Installed bgtask gives every test suite its fixtures (this one included)."""
    assert name in request.fixturenames or request.getfixturevalue(name) is not None
