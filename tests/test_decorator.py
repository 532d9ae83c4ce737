"""``@background(...)``: a WSGI app's fixed tasks, after each response."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    background,
    get_background_tasks,
)

from .helpers.recording import request_id
from .helpers.wsgi import Call, serve

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


async def notify_user(email: str, events: list[str]) -> None:
    events.append(f"notified {email}")


def test_fixed_tasks_run_after_each_response_without_the_middleware() -> None:
    """The decorator alone is enough: it installs the WSGI layer itself."""
    events: list[str] = []

    @background(BackgroundTask(notify_user, "user@example.com", events))
    def send_notification(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b'{"message": "Scheduled"}']

    call = Call(send_notification)
    assert call.body() == b'{"message": "Scheduled"}'
    assert events == []
    call.close()
    serve(send_notification)
    assert events == ["notified user@example.com"] * 2


def test_fixed_tasks_run_after_the_tasks_the_request_queued() -> None:
    """Queued tasks first, in call order, then the decorator's, in the given order."""
    events: list[str] = []

    def cleanup(path: str) -> None:
        events.append(f"cleanup {path}")

    async def log_event(event_id: int) -> None:
        events.append(f"log {event_id}")

    fixed = [BackgroundTask(cleanup, "/tmp/tempfile"), BackgroundTask(log_event, 42)]

    @background(BackgroundTasks(tasks=fixed))
    def submit(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(events.append, "queued by the view")
        start_response("200 OK", [])
        return [b"submitted"]

    serve(BackgroundTaskMiddleware(submit))
    assert events == ["queued by the view", "cleanup /tmp/tempfile", "log 42"]


def test_fixed_tasks_run_in_the_requests_context() -> None:
    """Each run sees the contextvars of the request it follows."""
    seen: list[str] = []

    def record() -> None:
        seen.append(request_id.get())

    @background(BackgroundTask(record))
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        request_id.set(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    serve(app, PATH_INFO="/a")
    serve(app, PATH_INFO="/b")
    assert seen == ["/a", "/b"]


def test_one_fixed_task_runs_concurrently_for_many_requests() -> None:
    """A shared task object runs from 8 threads at once without a context clash."""
    inside = threading.Barrier(8, timeout=10)
    finished: list[int] = []

    def meet() -> None:
        inside.wait()  # all 8 runs of the same task object are inside it together
        finished.append(1)

    @background(BackgroundTask(meet))
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    threads = [threading.Thread(target=serve, args=(app,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(finished) == 8


def test_fixed_tasks_are_discarded_when_the_app_raises() -> None:
    """No response, no tasks: the decorator's tasks do not run after an error."""
    events: list[str] = []

    @background(BackgroundTask(events.append, "fixed"))
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        raise PermissionError("forbidden")

    with pytest.raises(PermissionError):
        serve(app)
    assert events == []


def test_background_rejects_what_is_not_a_task() -> None:
    """A plain function is refused at decoration time, with what to do instead."""
    with pytest.raises(TypeError, match="add_task"):
        background(print)  # type: ignore[arg-type]


def test_decorated_app_keeps_its_name() -> None:
    """functools.wraps: the app's name and docstring survive."""

    @background(BackgroundTask(print))
    def my_view(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        """Docs."""
        start_response("200 OK", [])
        return [b""]

    assert my_view.__name__ == "my_view"
    assert my_view.__doc__ == "Docs."
