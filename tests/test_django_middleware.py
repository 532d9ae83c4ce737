"""bgtask.django's middleware in a real Django project (``tests/apps/djangoproject``), driven
with ``django.test.Client`` in a process of its own (Django's settings are process-wide):
the seeds' scenarios, errors, statuses, settings and transactions on a real database."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from bgtask import get_background_tasks

from .helpers.servers import DEADLINE, ROOT, Gunicorn, lines, spawn, wait_for

if TYPE_CHECKING:
    from pathlib import Path


def _postgres_up() -> bool:
    return _listening(5432)


class Project:
    """One run of the driver: the requests' answers, what the tasks recorded, the log."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.record = tmp_path / "record.jsonl"
        self.env = {
            "BGTASK_DJANGO_RECORD": str(self.record),
            "DJANGO_SQLITE": str(tmp_path / "db.sqlite3"),
            **env,
        }
        self.answers: list[dict[str, Any]] = []
        self.log = ""
        self.driver_thread = 0

    def run(self, *requests: str, expect_failure: bool = False) -> Project:
        result = subprocess.run(
            [sys.executable, "-m", "tests.apps.djangoproject.drive", *requests],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        self.log = result.stderr
        if expect_failure:
            assert result.returncode != 0, result.stdout
            return self
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        done, thread = lines[-1].split()
        assert done == "done", result.stdout
        self.driver_thread = int(thread)
        self.answers = [json.loads(line) for line in lines[:-1]]
        return self

    @property
    def statuses(self) -> list[int]:
        return [answer["status"] for answer in self.answers]

    def ran(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def ran_names(self) -> list[str]:
        return [f"{r['task']} {r.get('email', r.get('reason'))}" for r in self.ran()]

    def warnings(self) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith("WARNING bgtask")]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_signup_email_runs_after_the_response_with_the_test_client(project: Project) -> None:
    """Seed: the client's post() returns once the tasks have run (it closes the response)."""
    project.run("POST", "/signup", "email=a@b.c")
    assert project.answers == [{"status": 200, "body": '{"status": "Signup successful"}'}]
    assert project.ran_names() == ["send_welcome_email a@b.c", "log_signup a@b.c"]


def test_tasks_from_a_helper_merge_in_call_order(project: Project) -> None:
    """Seed: request.background_tasks and get_background_tasks() feed one collection."""
    project.run("GET", "/items", "q=shoes")
    assert [(r["email"], r["message"]) for r in project.ran()] == [
        ("first", "view"), ("log", "found query: shoes"), ("last", "view"),
    ]  # fmt: skip


def test_a_failing_task_stops_the_rest(project: Project) -> None:
    """Seed: the failure is logged at ERROR, the next task skipped with a WARNING."""
    project.run("GET", "/fail")
    assert project.ran_names() == ["write_notification before", "fail smtp down"]
    assert "ERROR bgtask background task tests.apps.djangoproject.tasks.fail failed" in project.log
    assert project.warnings() == [
        "WARNING bgtask background task tests.apps.djangoproject.tasks.write_notification "
        "skipped: an earlier task of its collection failed"
    ]


def test_a_view_that_raises_discards_its_tasks_with_a_warning(project: Project) -> None:
    """handler500 runs after the discard: the task it queues runs."""
    project.run("GET", "/boom")
    assert project.answers == [{"status": 500, "body": "error page"}]
    assert project.ran_names() == ["write_notification handler500"]
    assert project.warnings() == [
        "WARNING bgtask background task tests.apps.djangoproject.tasks.write_notification "
        "discarded: the view raised ValueError"
    ]


def test_http404_and_a_raising_middleware_discard_too(project: Project) -> None:
    """process_exception sees Http404; got_request_exception, a middleware below bgtask's."""
    project.run("GET", "/missing", "GET", "/middleware-boom")
    assert project.statuses == [404, 500]
    assert project.ran_names() == ["write_notification handler500"]
    assert [w.rsplit(": ", 1)[1] for w in project.warnings()] == [
        "the view raised Http404",
        "the request raised RuntimeError",
    ]


def test_discard_on_error_off_keeps_djangos_behaviour(tmp_path: Path) -> None:
    project = Project(tmp_path, BGTASK_SETTINGS='{"DISCARD_ON_ERROR": false}').run("GET", "/boom")
    assert project.statuses == [500]
    assert project.ran_names() == ["write_notification boom", "write_notification handler500"]
    assert project.warnings() == []


def test_a_5xx_response_keeps_its_tasks_unless_the_setting_says(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "dropped").mkdir()
    kept = Project(tmp_path / "kept").run("GET", "/unavailable")
    assert kept.statuses == [503]
    assert kept.ran_names() == ["write_notification 503"]
    dropped = Project(tmp_path / "dropped", BGTASK_SETTINGS='{"DISCARD_ON_5XX": true}')
    dropped.run("GET", "/unavailable")
    assert dropped.ran() == []
    assert dropped.warnings() == [
        "WARNING bgtask background task tests.apps.djangoproject.tasks.write_notification "
        "discarded: the response's status is 503"
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not _postgres_up():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    if request.param == "postgres" and importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed (the test extra has it)")
    return str(request.param)


def test_a_task_queued_in_a_committed_block_runs_and_sees_the_row(
    tmp_path: Path, database: str
) -> None:
    email = f"commit-{uuid.uuid4().hex}@b.c"
    project = Project(tmp_path, DJANGO_DB=database).run("POST", "/committed", f"email={email}")
    assert [(r["task"], r["found"]) for r in project.ran()] == [("count_signups", 1)]


def test_a_rolled_back_block_discards_its_task_with_a_warning(
    tmp_path: Path, database: str
) -> None:
    email = f"rollback-{uuid.uuid4().hex}@b.c"
    project = Project(tmp_path, DJANGO_DB=database).run("POST", "/rolled-back", f"email={email}")
    assert project.ran_names() == [f"write_notification {email}"]  # queued outside the block
    assert project.warnings() == [
        "WARNING bgtask background task tests.apps.djangoproject.tasks.count_signups "
        "discarded: the transaction it was queued in was rolled back"
    ]


def test_a_rolled_back_savepoint_discards_only_its_own_tasks(tmp_path: Path, database: str) -> None:
    email = f"savepoint-{uuid.uuid4().hex}@b.c"
    project = Project(tmp_path, DJANGO_DB=database).run("POST", "/savepoint", f"email={email}")
    assert [r["message"] for r in project.ran()] == ["outer"]
    assert len(project.warnings()) == 1
    assert "rolled back" in project.warnings()[0]


def test_atomic_requests_rollback_discards_the_views_tasks(tmp_path: Path, database: str) -> None:
    """set_rollback(True) under ATOMIC_REQUESTS, and a raising view with DISCARD_ON_ERROR
    off: the rollback alone discards the tasks."""
    email = f"atomic-{uuid.uuid4().hex}@b.c"
    project = Project(
        tmp_path,
        DJANGO_DB=database,
        DJANGO_ATOMIC_REQUESTS="1",
        BGTASK_SETTINGS='{"DISCARD_ON_ERROR": false}',
    ).run("POST", "/set-rollback", f"email={email}", "POST", "/atomic-boom", f"email={email}",
          "POST", "/committed", f"email={email}")  # fmt: skip
    assert project.statuses == [200, 500, 200]
    assert project.ran_names() == ["write_notification handler500", f"count_signups {email}"]
    assert project.ran()[1]["found"] == 1  # neither rolled-back row was kept
    assert [w.rsplit(": ", 1)[1] for w in project.warnings()] == [
        "the transaction it was queued in was rolled back"
    ] * 2


def test_transactions_off_runs_the_rolled_back_task(tmp_path: Path) -> None:
    project = Project(tmp_path, BGTASK_SETTINGS='{"TRANSACTIONS": false}')
    project.run("POST", "/rolled-back", "email=x@b.c")
    assert [r["task"] for r in project.ran()] == ["write_notification", "count_signups"]
    assert project.ran()[1]["found"] == 0


def test_a_file_response_runs_its_tasks_when_closed(project: Project) -> None:
    project.run("GET", "/download")
    assert project.answers[0]["body"].startswith('"""The project')
    assert project.ran_names() == ["write_notification download"]


def test_the_wsgi_recipe_and_the_middleware_together_run_each_task_once(tmp_path: Path) -> None:
    project = Project(tmp_path, DJANGO_WSGI_RECIPE="1")
    project.run("POST", "/signup", "email=a@b.c", "GET", "/boom", "POST", "/rolled-back",
                "email=r@b.c")  # fmt: skip
    assert project.statuses == [200, 500, 200]
    assert project.ran_names() == [
        "send_welcome_email a@b.c", "log_signup a@b.c", "write_notification handler500",
        "write_notification r@b.c",
    ]  # fmt: skip
    assert len(project.warnings()) == 2  # the raising view's task, the rolled-back one


def test_a_transaction_open_before_the_request_leaves_the_requests_own_blocks_to_judge(
    tmp_path: Path,
) -> None:
    """As under django.test.TestCase: the request's own block committed (a savepoint
    released): its task runs; its own block rolled back: discarded."""
    project = Project(tmp_path, DJANGO_OUTER_ATOMIC="1")
    project.run("POST", "/committed", "email=t@b.c", "POST", "/rolled-back", "email=r@b.c")
    assert [r["task"] for r in project.ran()] == ["count_signups", "write_notification"]
    assert project.ran()[0]["found"] == 1
    assert len(project.warnings()) == 1


def test_a_backend_named_by_its_dotted_path_gets_the_collection(tmp_path: Path) -> None:
    settings = '{"BACKEND": "tests.apps.djangoproject.backends.backend"}'
    project = Project(tmp_path, BGTASK_SETTINGS=settings).run("GET", "/items")
    assert [r["task"] for r in project.ran()] == ["submitted", *["write_notification"] * 2]
    assert project.ran()[0]["count"] == 2


def test_offloaded_tasks_close_their_connections_inline_ones_keep_the_requests(
    tmp_path: Path,
) -> None:
    """CONN_MAX_AGE=0: on a pool thread the connection is closed after each task (Django's
    close_old_connections); inline, the request's stays open until request_finished."""
    (tmp_path / "inline").mkdir()
    (tmp_path / "offload").mkdir()
    inline = Project(tmp_path / "inline").run("GET", "/connections")
    assert [r.get("open") for r in inline.ran()] == [None, True]
    offload = Project(tmp_path / "offload", BGTASK_SETTINGS='{"MODE": "offload"}')
    offload.run("GET", "/connections")
    assert [r.get("open") for r in offload.ran()] == [None, False]


def test_offload_mode_runs_the_tasks_on_a_pool_thread(tmp_path: Path) -> None:
    settings = '{"MODE": "offload", "OFFLOAD_THREADS": 2}'
    project = Project(tmp_path, BGTASK_SETTINGS=settings).run(
        "POST", "/committed", "email=o@b.c", "GET", "/items"
    )
    ran = project.ran()
    # Two requests' collections run concurrently; each one's own tasks keep their order.
    assert [r["email"] for r in ran if r["task"] == "write_notification"] == ["first", "last"]
    assert [r["found"] for r in ran if r["task"] == "count_signups"] == [1]
    assert {r["thread"] for r in ran} != {project.driver_thread}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('{"MODE": "threads"}', "settings.BGTASK['MODE'] must be one of 'inline', 'offload'"),
        ('{"OFFLOAD_THREAD": 4}', "settings.BGTASK has unknown keys ['OFFLOAD_THREAD']"),
        ('{"MODE": "offload", "OFFLOAD_THREADS": 0}', "['OFFLOAD_THREADS'] must be a whole"),
        ('{"OFFLOAD_THREADS": 4}', "need 'MODE': 'offload'"),
        ('{"MODE": "backend"}', "['MODE'] is 'backend' but ['BACKEND'] is not set"),
        ('{"BACKEND": "yourapp.nowhere.backend"}', "cannot be imported"),
        ('{"BACKEND": "os.path"}', "needs a submit(tasks) method, got module"),
        ('{"EXIT_TIMEOUT": "10"}', "['EXIT_TIMEOUT'] must be a number of seconds"),
        ('{"DISCARD_ON_5XX": 1}', "['DISCARD_ON_5XX'] must be True or False, got 1"),
        ('{"TASK_TIMEOUT": 0}', "['TASK_TIMEOUT'] timeout must be more than zero seconds"),
        ("[]", "settings.BGTASK must be a dict, got list"),
        ('{"MODE": "inline", "BACKEND": "x.y"}', "['BACKEND'] needs 'MODE': 'backend'"),
    ],
)
def test_bad_settings_stop_startup_with_improperly_configured(
    tmp_path: Path, setting: str, message: str
) -> None:
    """AppConfig.ready() validates: django.setup() fails before any request."""
    project = Project(tmp_path, BGTASK_SETTINGS=setting).run(expect_failure=True)
    assert "django.core.exceptions.ImproperlyConfigured: " in project.log
    assert message in project.log
    assert "Traceback" in project.log


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["0", "1"])
def test_under_gunicorn_gthread_the_email_goes_after_the_response(
    tmp_path: Path, recipe: str
) -> None:
    """Seed, on a real server: the response arrives while the welcome email still waits
    (for this test to have read it); then the task runs, once, with or without wsgi.py's
    WSGI middleware around Django."""
    go = tmp_path / "go"
    record = tmp_path / "record.jsonl"
    env = {
        "BGTASK_DJANGO_RECORD": str(record),
        "BGTASK_DJANGO_GO": str(go),
        "DJANGO_SQLITE": str(tmp_path / "db.sqlite3"),
        "DJANGO_WSGI_RECIPE": recipe,
    }
    with Gunicorn("tests.apps.djangoproject.wsgi:application", tmp_path / "log", env=env) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        connection.request(
            "POST",
            "/signup",
            "email=a%40b.c",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b'{"status": "Signup successful"}')
        assert not record.exists()  # the task is still waiting
        go.touch()
        wait_for(lambda: len(list(lines(record))) == 2, what="both tasks")
        connection.close()
    ran = [json.loads(line) for line in lines(record)]
    assert [(r["task"], r["email"]) for r in ran] == [
        ("send_welcome_email", "a@b.c"), ("log_signup", "a@b.c"),
    ]  # fmt: skip
    assert ran[0]["response_read"] is True


def test_without_the_middleware_the_error_names_it() -> None:
    """Outside a request (or a Django project without the middleware), the RuntimeError says
    what to add to MIDDLEWARE."""
    with pytest.raises(RuntimeError, match=r"add 'bgtask\.django\.BgTaskMiddleware' to MIDDLEWARE"):
        get_background_tasks()


def test_a_streaming_body_runs_its_tasks_after_the_last_chunk(project: Project) -> None:
    """The body itself may queue more through get_background_tasks(request.META)."""
    project.run("GET", "/stream")
    assert project.answers[0]["body"] == "first second"
    assert project.ran_names() == ["write_notification stream", "write_notification from the body"]


def test_a_streaming_body_that_raises_discards_the_tasks(project: Project) -> None:
    project.run("GET", "/stream", "fail=1")
    assert project.answers[0]["body"] == "body raised the body failed"
    assert project.ran() == []
    assert [w.rsplit(": ", 1)[1] for w in project.warnings()] == ["the response body raised"]


def test_an_async_view_finds_the_collection_both_ways(project: Project) -> None:
    """Django runs an async view through asgiref under WSGI, which copies the context."""
    project.run("GET", "/async-signup")
    assert project.ran_names() == ["log_signup async@b.c", "send_welcome_email async@b.c"]


@pytest.mark.parametrize("run", [True, False])
def test_capture_tasks_sees_what_the_django_client_queued(tmp_path: Path, run: bool) -> None:
    """bgtask.testing works with django.test.Client: run=False records and runs nothing."""
    project = Project(tmp_path, DJANGO_CAPTURE="run" if run else "record")
    project.run("POST", "/signup", "email=a@b.c")
    assert "captured send_welcome_email['a@b.c'] log_signup['a@b.c']" in project.log
    assert len(project.ran()) == (2 if run else 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
def test_under_runserver_the_email_goes_after_the_response(tmp_path: Path) -> None:
    """Django's development server calls close() after writing the response, too."""
    go, record = tmp_path / "go", tmp_path / "record.jsonl"
    port = _free_port()  # runserver takes no port 0; a race with another process is unlikely
    env = {
        "BGTASK_DJANGO_RECORD": str(record),
        "BGTASK_DJANGO_GO": str(go),
        "DJANGO_SQLITE": str(tmp_path / "db.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.apps.djangoproject.settings",
    }
    command = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with open(tmp_path / "log", "wb") as log:
        process = spawn(command, log, env)
    try:
        wait_for(lambda: _listening(port), what="runserver to listen")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        connection.request("POST", "/signup", "email=a%40b.c", FORM)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b'{"status": "Signup successful"}')
        connection.close()
        assert not record.exists()  # the task is still waiting
        go.touch()
        wait_for(lambda: len(list(lines(record))) == 2, what="both tasks")
    finally:
        process.terminate()
        process.wait(DEADLINE)
    ran = [json.loads(line) for line in lines(record)]
    assert [r["task"] for r in ran] == ["send_welcome_email", "log_signup"]
    assert ran[0]["response_read"] is True


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_an_exception_that_leaves_django_discards_the_tasks(tmp_path: Path) -> None:
    """DEBUG_PROPAGATE_EXCEPTIONS: the exception leaves Django's handler; nothing runs."""
    project = Project(tmp_path, DJANGO_PROPAGATE="1").run("GET", "/boom")
    assert project.answers == [{"status": 0, "body": "raised the view failed"}]
    assert project.ran() == []
    assert [w.rsplit(": ", 1)[1] for w in project.warnings()] == ["the view raised ValueError"]


def test_the_default_deadline_comes_from_the_settings(tmp_path: Path) -> None:
    """TASK_TIMEOUT: a request's async task without a deadline of its own is cancelled."""
    project = Project(tmp_path, BGTASK_SETTINGS='{"TASK_TIMEOUT": 0.1}').run("GET", "/slow")
    assert project.ran() == [
        {"task": "slow_report", "thread": project.ran()[0]["thread"], "cancelled": True}
    ]
    assert "slow_report timed out: its deadline of 0.1 s passed" in project.log


def test_exit_timeout_and_a_pool_of_its_own_come_from_the_settings(tmp_path: Path) -> None:
    settings = '{"MODE": "offload", "OFFLOAD_THREADS": 1, "EXIT_TIMEOUT": 3}'
    project = Project(tmp_path, BGTASK_SETTINGS=settings).run("GET", "/items", "GET", "/items")
    assert "exit timeout 3.0" in project.log
    ran = project.ran()
    assert len({r["thread"] for r in ran}) == 1  # one pool thread ran both requests' tasks
    assert ran[0]["thread"] != project.driver_thread
