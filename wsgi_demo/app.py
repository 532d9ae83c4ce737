"""The bgtask demo: the seeds' endpoints in Flask, with a timeline of what ran when.

The timeline listens to bgtask's task events (queued, started, finished, failed, skipped,
...) through ``BgTask(app, listeners=[...])``, and the demo's own middleware adds when each
request arrived and when its response was sent; ``GET /`` draws the recent requests as
phases (the response, then each task), with a button per endpoint to fire it inline or
offloaded, and above them the counts of bgtask's Prometheus metrics per task and event
(``GET /metrics`` is the scrape). Every endpoint is served twice: at its path by an app
whose tasks run inline in ``close()``, and under ``/offload`` by the same app with
``offload=True``. Served by ``make demo`` (gunicorn, gthread workers,
http://127.0.0.1:8000).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, jsonify, render_template, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bgtask import BackgroundTask, BackgroundTasks, background, get_background_tasks
from bgtask.flask import BackgroundResponse, BgTask
from bgtask.prometheus import enable_metrics, metrics_app

from .events import as_dict, recent_requests, record, request_id
from .metrics import KINDS, task_rows
from .timeline import rows_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from bgtask._events import TaskEvent

#: How long the demo's slow tasks take, so the gap after the response is visible.
TASK_SECONDS = float(os.environ.get("BGTASK_DEMO_TASK_SECONDS", "0.5"))

_request_numbers = itertools.count(1)


# -- the tasks (the timeline hears when each starts and ends) -----------------------------


def write_notification(email: str, message: str = "") -> None:
    """FastAPI's example task (sync): pretend to send a notification."""
    time.sleep(TASK_SECONDS)  # the task's own slow work (SMTP, an API call)


async def notify_user(email: str) -> None:
    """Esmerald's example task (async)."""
    await asyncio.sleep(TASK_SECONDS)


async def send_welcome_email(email: str) -> None:
    """Ellar's example task (async)."""
    await asyncio.sleep(TASK_SECONDS)


def write_log_sync() -> None:
    """Esmerald's sync example task."""


def flaky_task() -> None:
    """A task that fails: the ones after it in its request are skipped."""
    raise RuntimeError("the SMTP server said no")


class EmailService:
    """The injected service of the FastAPI layout seed (prints instead of sending)."""

    async def send_email(self, to_email: str, subject: str, body: str) -> None:
        await asyncio.sleep(TASK_SECONDS)


class EmailTasks:
    """Tasks organised by domain, with an injected service (FastAPI layout seed)."""

    def __init__(self, email_service: EmailService) -> None:
        self.email_service = email_service

    async def send_welcome_email(self, user_email: str) -> None:
        await self.email_service.send_email(
            to_email=user_email, subject="Welcome!", body="Welcome to our service"
        )


def get_email_tasks() -> EmailTasks:
    """The provider a FastAPI app would use with Depends."""
    return EmailTasks(EmailService())


# -- the app ---------------------------------------------------------------------------


class _RecordResponseSent:
    """Records 'response sent' when the server closes the response, before bgtask's tasks.

    Installed inside bgtask's middleware: the server calls close() once the body is
    written, and bgtask closes the app's iterable first, then runs the tasks.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = self.app(environ, start_response)
        rid = environ.get("bgtask_demo.request_id", "-")
        return _Closing(body, rid)


class _Closing:
    def __init__(self, body: Iterable[bytes], rid: str) -> None:
        self.body, self.rid = body, rid

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        if self.rid != "-":
            token = request_id.set(self.rid)
            try:
                record("response sent")
            finally:
                request_id.reset(token)


#: What the timeline calls each task event.
_EVENT_LABELS = {
    "queued": "task queued",
    "started": "task started",
    "succeeded": "task finished",
    "failed": "task failed",
    "skipped": "task skipped",
    "discarded": "task discarded",
    "cut": "task cut",
}


def on_task_event(event: TaskEvent) -> None:
    """The timeline's listener of bgtask's task events."""
    label = _EVENT_LABELS.get(event.kind)
    environ = event.environ
    if label is None or environ is None or "bgtask_demo.request_id" not in environ:
        return
    token = request_id.set(environ["bgtask_demo.request_id"])
    try:
        record(label, event.name, task=str(event.task.id), mode=event.mode)
    finally:
        request_id.reset(token)


#: The endpoints the page offers to fire: (method, path, what it shows).
ENDPOINTS = [
    ("POST", "/send-notification/you@example.com", "injected BackgroundTasks (FastAPI)"),
    ("GET", "/send-notification", "@background on the route (Esmerald)"),
    ("GET", "/log", "a sync no-op task"),
    ("POST", "/background-test/signup", "response.background (Ellar)"),
    ("POST", "/register", "EmailTasks with an injected service"),
    ("GET", "/fail", "a failing task, and the one after it skipped"),
]

_PAGES = (None, "timeline", "timeline_rows", "events_json", "static")


def create_app(*, offload: bool = False) -> Flask:
    """Build the demo app; with ``offload``, its tasks run on the offload pool."""
    app = Flask(__name__)
    app.wsgi_app = _RecordResponseSent(app.wsgi_app)  # type: ignore[method-assign]
    BgTask(app, offload=offload, listeners=[on_task_event])

    @app.before_request
    def start_request() -> None:
        if request.endpoint in _PAGES:
            return
        rid = f"{os.getpid()}-{next(_request_numbers)}"
        request.environ["bgtask_demo.request_id"] = rid
        request_id.set(rid)
        record("request received", path=request.script_root + request.path)

    # FastAPI: injected BackgroundTasks, positional and keyword arguments.
    @app.route("/send-notification/<email>", methods=["GET", "POST"])
    def send_notification(email: str, background_tasks: BackgroundTasks) -> Any:
        background_tasks.add_task(write_notification, email, message="some notification")
        return {"message": "Notification sent in the background"}

    # Esmerald: a route decorator's fixed task.
    @app.get("/send-notification")
    @background(BackgroundTask(notify_user, "user@example.com"))
    def scheduled() -> Any:
        return {"message": "Scheduled"}

    @app.get("/log")
    @background(BackgroundTasks(tasks=[BackgroundTask(write_log_sync)]))
    def log() -> Any:
        return {"message": "logged"}

    # Ellar: the response's background, under a blueprint.
    ellar = Blueprint("ellar", __name__, url_prefix="/background-test")

    @ellar.route("/signup", methods=["GET", "POST"])
    def sign_up() -> Response:
        email = request.values.get("email", "user@example.com")
        response = BackgroundResponse(json.dumps({"status": "Signup successful"}))
        response.content_type = "application/json"
        response.background = BackgroundTask(send_welcome_email, email=email)
        return response

    app.register_blueprint(ellar)

    # The FastAPI project layout: a task class with an injected service.
    @app.route("/register", methods=["GET", "POST"])
    def register() -> Any:
        email_tasks = get_email_tasks()
        get_background_tasks().add_task(
            email_tasks.send_welcome_email, request.values.get("email", "new@example.com")
        )
        return {"message": "User registered"}

    # The error policy: a failing task, and the one after it skipped.
    @app.get("/fail")
    def fail() -> Any:
        get_background_tasks().add_task(flaky_task)
        get_background_tasks().add_task(write_log_sync)
        return {"message": "queued a task that will fail"}

    @app.get("/")
    def timeline() -> str:
        rows = rows_of(recent_requests())
        return render_template(
            "timeline.html", rows=rows, endpoints=ENDPOINTS, kinds=KINDS, tasks=task_rows()
        )

    @app.get("/rows")
    def timeline_rows() -> str:
        """The timeline's table alone: what the page fetches to update itself."""
        return render_template(
            "rows.html", rows=rows_of(recent_requests()), kinds=KINDS, tasks=task_rows()
        )

    @app.get("/events.json")
    def events_json() -> Response:
        return jsonify(
            [
                {"request": rid, "events": [as_dict(event) for event in events]}
                for rid, events in recent_requests()
            ]
        )

    return app


def create_demo() -> WSGIApplication:
    """Each endpoint twice: at its path with inline tasks, under /offload offloaded; and
    bgtask's metrics at /metrics (both fed by the task events, as the timeline is)."""
    enable_metrics()
    inline = create_app()
    offloaded = create_app(offload=True)
    return DispatcherMiddleware(inline, {"/offload": offloaded, "/metrics": metrics_app()})


app = create_demo()
