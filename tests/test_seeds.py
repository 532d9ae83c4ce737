"""Every example of the four seed documents, ported one-to-one to Flask and bgtask.

The seed documents (``/work/shared/seeds``) are the specification: each section below ports
one document's examples, keeping their names and behaviour, and asserts what the document
says happens. Each document also gets at least one test that the tasks had not run when the
body was produced, only once the response was closed ("after the response").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import flask
import pytest

from bgtask import BackgroundTask, BackgroundTasks, background, get_background_tasks
from bgtask.flask import BgTask
from bgtask.testing import capture_tasks, closing_client

if TYPE_CHECKING:
    from flask.testing import FlaskClient

#: What the tasks did, in order; the seeds' emails and API calls are recorded, not sent.
events: list[str] = []


@pytest.fixture(autouse=True)
def _fresh_events_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeds write ``log.txt`` in the working directory: make that a temporary one."""
    events.clear()
    submit_collections.clear()
    monkeypatch.chdir(tmp_path)


def make_app(*blueprints: flask.Blueprint) -> flask.Flask:
    app = flask.Flask(__name__)
    BgTask(app)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app


def client_for(app: flask.Flask) -> FlaskClient:
    """Flask's test client, closing each response so its tasks have run when a call returns."""
    return closing_client(app.test_client())


def log_txt() -> str:
    return Path("log.txt").read_text()


# --- 000 (000_7ccd29db000dfe8b.txt): Esmerald, "Background Tasks" -------------------------
# ``background=`` on the route decorator becomes ``@background(...)`` under ``@app.get``.


async def some_email_function(email: str) -> None:
    await asyncio.sleep(0)
    events.append(f"email sent to {email}")


async def notify_user(email: str) -> None:
    # Imagine this sends an email
    await some_email_function(email)


async def remove_file(file_path: str) -> None:
    # Recorded, not removed: the real /tmp/tempfile is none of this test's business.
    await asyncio.sleep(0)
    events.append(f"removed {file_path}")


async def save_log(event_id: int) -> None:
    await asyncio.sleep(0)
    events.append(f"saved log {event_id}")


async def cleanup(file_path: str) -> None:
    await remove_file(file_path)


async def log_event(event_id: int) -> None:
    await save_log(event_id)


def write_log_sync() -> None:
    with open("log.txt", "a") as f:
        f.write("Log entry\n")


#: (the injected ``background`` parameter, get_background_tasks()) for each /submit call.
submit_collections: list[tuple[BackgroundTasks, BackgroundTasks]] = []


def esmerald_app() -> flask.Flask:
    """The three examples of 000 on one app: their paths do not clash."""
    app = make_app()

    @app.get("/send-notification")
    @background(BackgroundTask(notify_user, "user@example.com"))
    def send_notification() -> dict[str, str]:
        return {"message": "Scheduled"}

    @app.post("/submit")
    @background(
        BackgroundTasks(
            tasks=[
                BackgroundTask(cleanup, "/tmp/tempfile"),
                BackgroundTask(log_event, 42),
            ]
        )
    )
    def submit(background: BackgroundTasks) -> dict[str, str]:
        submit_collections.append((background, get_background_tasks()))
        return {"status": "submitted"}

    @app.get("/log")
    @background(BackgroundTasks(tasks=[BackgroundTask(write_log_sync)]))
    def log() -> dict[str, str]:
        return {"message": "logged"}

    return app


def test_esmerald_route_background_notifies_the_user_after_the_response() -> None:
    """BackgroundTask(notify_user, ...) on the route runs once the response was sent."""
    client = client_for(esmerald_app())
    response = client.get("/send-notification", buffered=False)
    assert response.get_json() == {"message": "Scheduled"}
    assert events == []  # the body is out, the task has not run
    response.close()
    assert events == ["email sent to user@example.com"]


def test_esmerald_route_background_runs_after_every_response_of_the_route() -> None:
    """The route's fixed task is not used up: each request runs it again."""
    client = client_for(esmerald_app())
    for _ in range(2):
        assert client.get("/send-notification").get_json() == {"message": "Scheduled"}
    assert events == ["email sent to user@example.com"] * 2


def test_esmerald_background_tasks_run_cleanup_then_log_event_after_submit() -> None:
    """BackgroundTasks(tasks=[cleanup, log_event]) runs both, in order, after the response."""
    client = client_for(esmerald_app())
    response = client.post("/submit", buffered=False)
    assert response.get_json() == {"status": "submitted"}
    assert events == []
    response.close()
    assert events == ["removed /tmp/tempfile", "saved log 42"]


def test_esmerald_submit_gets_the_requests_background_tasks_injected() -> None:
    """``background: BackgroundTasks`` receives the request's own collection."""
    client = client_for(esmerald_app())
    client.post("/submit")
    client.post("/submit")
    [(first_injected, first_current), (second_injected, second_current)] = submit_collections
    assert isinstance(first_injected, BackgroundTasks)
    assert first_injected is first_current
    assert second_injected is second_current
    assert first_injected is not second_injected  # a fresh collection per request


def test_esmerald_sync_task_appends_a_log_entry_after_each_response() -> None:
    """Sync tasks are supported too: write_log_sync appends to log.txt after each /log."""
    client = client_for(esmerald_app())
    response = client.get("/log", buffered=False)
    assert response.get_json() == {"message": "logged"}
    assert not Path("log.txt").exists()
    response.close()
    assert log_txt() == "Log entry\n"
    client.get("/log")
    assert log_txt() == "Log entry\nLog entry\n"


# --- 001 (001_87005b098b384b88.txt): Ellar, "Background Tasks" ----------------------------
# ``ModuleRouter('/background-test')`` becomes a Blueprint with that url_prefix; Ellar's
# ``username: str, password: str, email: str`` come from the form or the query string.

SIGNUP = {"username": "ada", "password": "correct horse", "email": "ada@example.com"}


@dataclasses.dataclass
class SignUp:
    """Ellar's ``username: str, password: str, email: str`` parameters, all required."""

    username: str
    password: str
    email: str


def sign_up_fields() -> SignUp:
    """From the form or the query string; a missing one is a 400, as Ellar rejects it."""
    values = flask.request.values
    return SignUp(values["username"], values["password"], values["email"])


def ellar_response_background_app() -> flask.Flask:
    """001, "Adding BackgroundTask": ``res.background`` on the response."""
    router = flask.Blueprint("background_test", __name__, url_prefix="/background-test")

    async def send_welcome_email(email: str) -> None:
        print(f"Send Welcome Email Task Called with {email}")

    @router.post("/signup")
    def sign_up() -> flask.Response:
        email = sign_up_fields().email
        res = flask.make_response({"status": "Signup successful"})
        res.background = BackgroundTask(send_welcome_email, email=email)  # type: ignore[attr-defined]
        return res

    return make_app(router)


def ellar_injected_app(*, smtp_down: bool = False) -> flask.Flask:
    """001, "Using BackgroundTasks": injected by annotation. ``smtp_down`` makes the email fail."""
    router = flask.Blueprint("background_test", __name__, url_prefix="/background-test")

    def another_background_task(parameter: str) -> None:
        print(f'Another Background task called with "{parameter}"')

    async def send_welcome_email(email: str) -> None:
        if smtp_down:
            msg = "SMTP server down"
            raise ConnectionRefusedError(msg)
        print(f'Send Welcome Email Task Called with "{email}"')

    @router.post("/signup")
    def sign_up(tasks: BackgroundTasks) -> dict[str, str]:
        email = sign_up_fields().email
        tasks.add_task(send_welcome_email, email=email)
        tasks.add_task(another_background_task, "another_background_task parameter")
        return {"status": "Signup successful"}

    return make_app(router)


def test_ellar_response_background_prints_after_the_response(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """res.background = BackgroundTask(send_welcome_email, email=email) prints once sent."""
    client = client_for(ellar_response_background_app())
    response = client.post("/background-test/signup", data=SIGNUP, buffered=False)
    assert response.status_code == 200
    assert response.get_json() == {"status": "Signup successful"}
    assert capsys.readouterr().out == ""
    response.close()
    assert capsys.readouterr().out == "Send Welcome Email Task Called with ada@example.com\n"


def test_ellar_response_background_takes_the_fields_from_the_query_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ellar reads plain ``str`` parameters from the query string: so does the port."""
    client = client_for(ellar_response_background_app())
    response = client.post("/background-test/signup", query_string=SIGNUP)
    assert response.get_json() == {"status": "Signup successful"}
    assert capsys.readouterr().out == "Send Welcome Email Task Called with ada@example.com\n"


def test_ellar_injected_tasks_run_in_the_order_they_were_added_after_the_response(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tasks: BackgroundTasks``: the async email, then the sync task, once the body is out."""
    client = client_for(ellar_injected_app())
    response = client.post("/background-test/signup", data=SIGNUP, buffered=False)
    assert response.get_json() == {"status": "Signup successful"}
    assert capsys.readouterr().out == ""
    response.close()
    assert capsys.readouterr().out.splitlines() == [
        'Send Welcome Email Task Called with "ada@example.com"',
        'Another Background task called with "another_background_task parameter"',
    ]


def test_ellar_failing_task_skips_the_following_tasks(
    capsys: pytest.CaptureFixture[str], bgtask_log: pytest.LogCaptureFixture
) -> None:
    """The hint: when a task raises, the following ones are skipped, each logged as skipped."""
    client = client_for(ellar_injected_app(smtp_down=True))
    response = client.post("/background-test/signup", data=SIGNUP)
    assert response.status_code == 200
    assert response.get_json() == {"status": "Signup successful"}
    assert capsys.readouterr().out == ""  # another_background_task never printed
    problems = [
        (record.levelno, record.getMessage(), record.exc_info and record.exc_info[0])
        for record in bgtask_log.records
        if record.levelno >= logging.WARNING
    ]
    local = f"{__name__}.ellar_injected_app.<locals>"
    assert problems == [
        (
            logging.ERROR,
            f"background task {local}.send_welcome_email failed",
            ConnectionRefusedError,
        ),
        (
            logging.WARNING,
            f"background task {local}.another_background_task skipped:"
            " an earlier task of its collection failed",
            None,
        ),
    ]


# --- 002 (002_fe8937fa1257bed8.txt): FastAPI, "Background Tasks" --------------------------
# ``background_tasks: BackgroundTasks`` is injected by annotation; Flask has no Depends, so
# the view calls the dependency itself.


def fastapi_basic_app() -> flask.Flask:
    """002, "Basic Usage"."""
    app = make_app()

    def write_notification(email: str, message: str = "") -> None:
        with open("log.txt", mode="w") as email_file:
            content = f"notification for {email}: {message}"
            email_file.write(content)

    @app.post("/send-notification/<email>")
    async def send_notification(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(write_notification, email, message="some notification")
        return {"message": "Notification sent in the background"}

    return app


def fastapi_task_parameters_app() -> flask.Flask:
    """002, "Add Task Parameters": positional and keyword arguments reach the function."""
    app = make_app()

    def function(arg1: str, arg2: int, *, key1: str, key2: bool = False) -> None:
        events.append(f"function({arg1!r}, {arg2!r}, key1={key1!r}, key2={key2!r})")

    @app.post("/task-parameters")
    async def task_parameters(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(
            function,  # Task function
            "arg1",  # Positional args
            2,
            key1="value1",  # Keyword args
            key2=True,
        )
        return {"message": "queued"}

    return app


def fastapi_task_types_app() -> flask.Flask:
    """002, "Task Function Types": a sync ``def`` and an ``async def`` task."""
    app = make_app()

    # Sync task
    def process_file(path: str) -> None:
        with open(path) as f:
            events.append(f"processed {f.read()!r}")

    # Async task
    async def call_external_api(url: str) -> None:
        await asyncio.sleep(0)  # no network: httpx's client.get(url) is recorded instead
        events.append(f"called {url}")

    @app.post("/upload")
    async def upload(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(process_file, flask.request.form["path"])
        background_tasks.add_task(call_external_api, "https://api.example.com/uploaded")
        return {"message": "processing"}

    return app


def fastapi_dependency_app(*, dependency_looks_up_the_tasks: bool = False) -> flask.Flask:
    """002, "With Dependency Injection": ``get_query`` is called by the view.

    With ``dependency_looks_up_the_tasks`` the dependency finds the request's collection
    with ``get_background_tasks()`` instead of receiving it.
    """
    app = make_app()

    def write_log(message: str) -> None:
        with open("log.txt", mode="a") as log:
            log.write(message)

    def get_query(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
        if q:
            message = f"found query: {q}\n"
            background_tasks.add_task(write_log, message)
        return q

    def get_query_looking_up_the_tasks(q: str | None = None) -> str | None:
        return get_query(get_background_tasks(), q)

    @app.post("/send-notification/<email>")
    async def send_notification(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        if dependency_looks_up_the_tasks:
            get_query_looking_up_the_tasks(flask.request.args.get("q"))
        else:
            get_query(background_tasks, flask.request.args.get("q"))
        message = f"message to {email}\n"
        background_tasks.add_task(write_log, message)
        return {"message": "Message sent"}

    return app


def test_fastapi_write_notification_writes_log_txt_after_the_response() -> None:
    """add_task(write_notification, email, message=...) writes log.txt once the body is out."""
    client = client_for(fastapi_basic_app())
    response = client.post("/send-notification/foo@example.com", buffered=False)
    assert response.get_json() == {"message": "Notification sent in the background"}
    assert not Path("log.txt").exists()
    response.close()
    assert log_txt() == "notification for foo@example.com: some notification"


def test_fastapi_write_notification_overwrites_log_txt() -> None:
    """mode="w": each notification replaces the previous one."""
    client = client_for(fastapi_basic_app())
    client.post("/send-notification/foo@example.com")
    client.post("/send-notification/bar@example.com")
    assert log_txt() == "notification for bar@example.com: some notification"


def test_fastapi_add_task_passes_positional_and_keyword_arguments() -> None:
    """add_task(function, arg1, arg2, key1=value1, key2=value2) calls function so."""
    client = client_for(fastapi_task_parameters_app())
    with capture_tasks() as queued:
        response = client.post("/task-parameters")
    assert response.get_json() == {"message": "queued"}
    [(function, args, kwargs)] = queued
    assert function.__name__ == "function"
    assert (args, kwargs) == (("arg1", 2), {"key1": "value1", "key2": True})
    assert events == ["function('arg1', 2, key1='value1', key2=True)"]


def test_fastapi_sync_and_async_task_functions_both_run_after_the_response(
    tmp_path: Path,
) -> None:
    """``def`` and ``async def`` tasks both run, in order, once the response was sent."""
    upload = tmp_path / "upload.csv"
    upload.write_text("a,b\n")
    client = client_for(fastapi_task_types_app())
    response = client.post("/upload", data={"path": str(upload)}, buffered=False)
    assert response.get_json() == {"message": "processing"}
    assert events == []
    response.close()
    assert events == ["processed 'a,b\\n'", "called https://api.example.com/uploaded"]


def test_fastapi_dependency_and_view_tasks_merge_in_call_order_after_the_response() -> None:
    """The dependency's write_log, then the view's: one collection, run after the response."""
    client = client_for(fastapi_dependency_app())
    response = client.post("/send-notification/foo@example.com?q=cats", buffered=False)
    assert response.get_json() == {"message": "Message sent"}
    assert not Path("log.txt").exists()
    response.close()
    assert log_txt() == "found query: cats\nmessage to foo@example.com\n"


def test_fastapi_dependency_without_a_query_queues_nothing() -> None:
    """Without ``q`` only the view's line is written."""
    client = client_for(fastapi_dependency_app())
    client.post("/send-notification/foo@example.com")
    assert log_txt() == "message to foo@example.com\n"


def test_fastapi_dependency_finding_the_tasks_itself_merges_with_the_views() -> None:
    """A dependency calling get_background_tasks() queues on the view's injected collection."""
    client = client_for(fastapi_dependency_app(dependency_looks_up_the_tasks=True))
    client.post("/send-notification/foo@example.com?q=cats")
    assert log_txt() == "found query: cats\nmessage to foo@example.com\n"


def test_fastapi_log_txt_appends_across_requests() -> None:
    """mode="a": a second request's lines follow the first's."""
    client = client_for(fastapi_dependency_app())
    client.post("/send-notification/foo@example.com?q=cats")
    client.post("/send-notification/bar@example.com")
    assert log_txt() == (
        "found query: cats\nmessage to foo@example.com\nmessage to bar@example.com\n"
    )


# --- 003 (003_ebb44885f9616453.txt): FastAPI project layout, "Background Tasks" -----------
# ``router`` becomes a Blueprint; ``Depends(get_email_tasks)`` becomes a call in the view.


class FakeEmailService:
    """The seed's injected service: records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    async def send_email(self, *, to_email: str, subject: str, body: str) -> None:
        await asyncio.sleep(0)
        self.sent.append({"to_email": to_email, "subject": subject, "body": body})


# tasks/email.py
class EmailTasks:
    def __init__(self, email_service: FakeEmailService) -> None:
        self.email_service = email_service

    async def send_welcome_email(self, user_email: str) -> None:
        await self.email_service.send_email(
            to_email=user_email, subject="Welcome!", body="Welcome to our service"
        )


@dataclasses.dataclass
class UserCreate:
    email: str
    password: str


def fastapi_layout_app(email_service: FakeEmailService) -> flask.Flask:
    """003's "Basic Usage" and "Task Organization", on one app."""
    router = flask.Blueprint("router", __name__)

    async def write_log(message: str) -> None:
        with open("log.txt", "a") as f:  # noqa: ASYNC230 -- the seed's own task
            f.write(message)

    @router.post("/send-notification")
    async def send_notification(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(write_log, "Message sent")
        return {"message": "Notification sent"}

    def get_email_tasks() -> EmailTasks:
        return EmailTasks(email_service)

    # routes/auth.py
    @router.post("/register")
    async def register(background_tasks: BackgroundTasks) -> dict[str, str]:
        user_data = UserCreate(**flask.request.get_json())
        email_tasks = get_email_tasks()
        # Create user...
        background_tasks.add_task(email_tasks.send_welcome_email, user_data.email)
        return {"message": "User registered"}

    return make_app(router)


NEW_USER = {"email": "new@example.com", "password": "correct horse"}


def test_layout_async_write_log_appends_after_the_response() -> None:
    """An ``async def`` task writing a file runs once the response was sent."""
    client = client_for(fastapi_layout_app(FakeEmailService()))
    response = client.post("/send-notification", buffered=False)
    assert response.get_json() == {"message": "Notification sent"}
    assert not Path("log.txt").exists()
    response.close()
    assert log_txt() == "Message sent"
    client.post("/send-notification")
    assert log_txt() == "Message sentMessage sent"


def test_layout_register_sends_the_welcome_email_through_the_injected_service() -> None:
    """A bound async method of a task class, using its injected service, after the response."""
    email_service = FakeEmailService()
    client = client_for(fastapi_layout_app(email_service))
    response = client.post("/register", json=NEW_USER, buffered=False)
    assert response.get_json() == {"message": "User registered"}
    assert email_service.sent == []
    response.close()
    assert email_service.sent == [
        {"to_email": "new@example.com", "subject": "Welcome!", "body": "Welcome to our service"}
    ]


def test_layout_register_queues_the_bound_method_with_the_users_email() -> None:
    """What was queued: EmailTasks.send_welcome_email bound to the injected service."""
    email_service = FakeEmailService()
    client = client_for(fastapi_layout_app(email_service))
    with capture_tasks(run=False) as queued:
        client.post("/register", json=NEW_USER)
    [(func, args, kwargs)] = queued
    assert func.__func__ is EmailTasks.send_welcome_email  # type: ignore[attr-defined]
    assert func.__self__.email_service is email_service  # type: ignore[attr-defined]
    assert (args, kwargs) == (("new@example.com",), {})
    assert email_service.sent == []


def test_layout_task_return_values_are_ignored(bgtask_log: pytest.LogCaptureFixture) -> None:
    """Best practice 4: a value a task returns goes nowhere and changes nothing."""
    app = make_app()

    async def send_welcome_email(user_email: str) -> str:
        events.append(f"welcome {user_email}")
        return "message-id-1"

    def count_users() -> int:
        events.append("counted")
        return 1

    def write_log(message: str) -> None:
        events.append(message)

    @app.post("/register")
    async def register(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(send_welcome_email, "new@example.com")
        background_tasks.add_task(count_users)
        background_tasks.add_task(write_log, "Message sent")
        return {"message": "User registered"}

    client = client_for(app)
    response = client.post("/register")
    assert response.get_json() == {"message": "User registered"}
    assert events == ["welcome new@example.com", "counted", "Message sent"]
    assert [r for r in bgtask_log.records if r.levelno >= logging.WARNING] == []
    assert client.post("/register").get_json() == {"message": "User registered"}
