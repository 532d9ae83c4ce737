"""Task control in one process: options on the function, deadlines, retries, handles.

Every request is a real WSGI call (iterated, then closed, as a server does); every wait is
on an Event, ``drain()`` or a handle's ``wait()`` with a deadline.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import flask
import pytest

import bgtask
from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    OffloadPool,
    RetryPolicy,
    TaskOptions,
    drain,
)
from bgtask.flask import BgTask

from .helpers.forking import run_python
from .test_offload import DEADLINE, app_queuing, request

if TYPE_CHECKING:
    from collections.abc import Callable


def queueing(*calls: tuple[Any, ...]) -> Callable[[BackgroundTasks], object]:
    return lambda tasks: [tasks.add_task(func, *args) for func, *args in calls]


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bgtask" and r.levelno == level]


# -- options on the function ------------------------------------------------------------


def test_the_decorator_records_options_and_returns_the_function_itself() -> None:
    def send_email(to: str, timeout: int = 3, retry: bool = False) -> None: ...

    decorated = bgtask.task(timeout=5, retry=RetryPolicy(max=2))(send_email)
    assert decorated is send_email
    task = BackgroundTask(send_email, "a@example.com", timeout=1, retry=True)
    # The task's own timeout= and retry= keywords stay its arguments.
    assert task.kwargs == {"timeout": 1, "retry": True}
    assert task.options is not None
    assert task.options.timeout == 5.0
    assert task.options.retry is not None
    assert task.options.retry.max == 2
    # Seen through a partial and a bound method.
    assert BackgroundTask(functools.partial(send_email, "b")).options is task.options

    class Mailer:
        @bgtask.task(timeout=2)
        def send(self) -> None: ...

    method = BackgroundTask(Mailer().send).options
    assert method is not None
    assert method.timeout == 2.0
    assert BackgroundTask(print).options is None


@pytest.mark.parametrize(
    ("options", "error", "problem"),
    [
        ({"timeout": 0}, ValueError, "timeout must be more than zero seconds, got 0"),
        ({"timeout": "5"}, TypeError, "timeout must be seconds (a number) or None, got str"),
        ({"retry": 3}, TypeError, "retry must be a RetryPolicy or None, got int"),
        ({"retry_on": ValueError}, TypeError, "retry_on must be a tuple of exception classes"),
    ],
)
def test_bad_options_fail_where_the_function_is_defined(
    options: dict[str, Any], error: type[Exception], problem: str
) -> None:
    with pytest.raises(error) as excinfo:
        bgtask.task(**options)
    assert str(excinfo.value).startswith(problem)


# -- deadlines --------------------------------------------------------------------------


def test_an_async_task_is_cancelled_at_its_deadline_and_may_clean_up(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Timed out: it saw CancelledError, it failed for the policy, the next one skipped."""
    cleaned = threading.Event()

    @bgtask.task(timeout=0.1)
    async def slow_webhook() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cleaned.set()
            raise

    ran: list[str] = []
    queued: list[BackgroundTask] = []
    app = BackgroundTaskMiddleware(app_queuing)
    started = time.monotonic()
    request(
        app,
        lambda tasks: queued.extend(
            [tasks.add_task(slow_webhook), tasks.add_task(ran.append, "x")]
        ),
    )
    assert time.monotonic() - started < 5
    assert cleaned.is_set()
    assert [task.state for task in queued] == ["timed_out", "skipped"]
    assert ran == []
    [error] = messages(bgtask_log, logging.ERROR)
    assert error == (
        f"background task {__name__}.test_an_async_task_is_cancelled_at_its_deadline_and_may_"
        "clean_up.<locals>.slow_webhook timed out: its deadline of 0.1 s passed; it was cancelled"
    )


def test_an_async_tasks_own_timeout_error_is_a_plain_failure(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    @bgtask.task(timeout=30)
    async def raises_timeout() -> None:
        raise TimeoutError("the API did not answer")

    tasks = BackgroundTasks()
    task = tasks.add_task(raises_timeout)
    tasks()
    assert task.state == "failed"
    assert isinstance(task.error, TimeoutError)


def test_a_sync_task_past_its_deadline_is_reported_overdue_once_and_runs_on(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """It cannot be interrupted: one WARNING naming it, then it finishes and succeeds."""
    release, overdue_seen = threading.Event(), threading.Event()

    @bgtask.task(timeout=0.05)
    def export_report() -> None:
        release.wait(DEADLINE)

    def watch(event: Any) -> None:
        if event.kind == "overdue":
            overdue_seen.set()

    bgtask._events.subscribe(watch)
    try:
        pool = OffloadPool(threads=1)
        app = BackgroundTaskMiddleware(app_queuing, offload=pool)
        queued: list[BackgroundTask] = []
        request(app, lambda tasks: queued.append(tasks.add_task(export_report)))
        assert overdue_seen.wait(DEADLINE)
        assert str(queued[0].state) == "running"
        assert queued[0].overdue
        release.set()
        assert drain(DEADLINE)
    finally:
        bgtask._events.unsubscribe(watch)
    assert queued[0].state == "succeeded"
    [warning] = messages(bgtask_log, logging.WARNING)
    assert warning.endswith(
        "export_report overdue: still running after 0.05 s, its deadline; a sync task cannot "
        "be interrupted: it runs on"
    )


def test_the_middlewares_default_deadline_applies_to_tasks_without_their_own() -> None:
    async def no_options() -> None:
        await asyncio.sleep(30)

    @bgtask.task(timeout=5)
    async def own_deadline() -> None:
        await asyncio.sleep(0.2)

    app = BackgroundTaskMiddleware(app_queuing, task_timeout=0.05)
    queued: list[BackgroundTask] = []
    tasks_of = queueing((own_deadline,), (no_options,))
    request(app, lambda tasks: queued.extend(tasks_of(tasks)))  # type: ignore[arg-type]
    assert [task.state for task in queued] == ["succeeded", "timed_out"]
    with pytest.raises(ValueError, match="timeout must be more than zero seconds"):
        BackgroundTaskMiddleware(app_queuing, task_timeout=-1)


def test_flask_takes_the_default_deadline_from_its_config() -> None:
    app = flask.Flask(__name__)
    app.config["BGTASK_TASK_TIMEOUT"] = 0.05
    BgTask(app)
    queued: list[BackgroundTask] = []

    async def slow() -> None:
        await asyncio.sleep(30)

    @app.get("/")
    def index(background_tasks: BackgroundTasks) -> str:
        queued.append(background_tasks.add_task(slow))
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert queued[0].state == "timed_out"


# -- retries ----------------------------------------------------------------------------


class Flaky:
    """Fails ``failures`` times with ``error``, then succeeds; records the threads it ran on."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[int] = []

    def __call__(self) -> None:
        self.calls.append(threading.get_ident())
        if len(self.calls) <= self.failures:
            raise self.error("the SMTP server was down")


def test_a_failing_task_is_retried_resuming_at_that_task(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Two failures, then success: the task before ran once, the one after once, in order."""
    flaky = Flaky(failures=2)
    send = bgtask.task(retry=RetryPolicy(max=3))(functools.partial(flaky))
    ran: list[str] = []
    queued: list[BackgroundTask] = []
    app = BackgroundTaskMiddleware(app_queuing)
    request(
        app,
        lambda tasks: queued.extend(
            [
                tasks.add_task(ran.append, "before"),
                tasks.add_task(send),
                tasks.add_task(ran.append, "after"),
            ]
        ),
    )
    assert ran == ["before", "after"]
    assert len(flaky.calls) == 3
    assert [task.state for task in queued] == ["succeeded"] * 3
    assert queued[1].attempts == 3
    warnings = messages(bgtask_log, logging.WARNING)
    assert [w.rsplit(": ", 1)[-1] for w in warnings] == [
        "attempt 2 of 4 in 0 s",
        "attempt 3 of 4 in 0 s",
    ]
    assert all("failed, retrying" in w for w in warnings)


def test_retries_exhausted_the_task_fails_and_the_rest_is_skipped() -> None:
    flaky = Flaky(failures=5)
    send = bgtask.task(retry=RetryPolicy(max=2))(functools.partial(flaky))
    tasks = BackgroundTasks()
    first, after = tasks.add_task(send), tasks.add_task(print, "never")
    tasks()
    assert len(flaky.calls) == 3
    assert (first.state, after.state) == ("failed", "skipped")


def test_only_the_chosen_exceptions_are_retried() -> None:
    flaky = Flaky(failures=1, error=ValueError)
    send = bgtask.task(retry=RetryPolicy(max=3), retry_on=(ConnectionError,))(
        functools.partial(flaky)
    )
    tasks = BackgroundTasks()
    task = tasks.add_task(send)
    tasks()
    assert len(flaky.calls) == 1
    assert task.state == "failed"


def test_a_retry_that_waits_leaves_the_request_thread() -> None:
    """Inline, a 0.5 s backoff: close() returns at once; the retry runs later, on the pool."""
    flaky = Flaky(failures=1)
    send = bgtask.task(retry=RetryPolicy(max=1, backoff=0.5))(functools.partial(flaky))
    ran: list[tuple[str, int]] = []
    queued: list[BackgroundTask] = []

    def after() -> None:
        ran.append(("after", threading.get_ident()))

    app = BackgroundTaskMiddleware(app_queuing)
    started = time.monotonic()
    request(app, lambda tasks: queued.extend([tasks.add_task(send), tasks.add_task(after)]))
    returned = time.monotonic() - started
    assert returned < 0.4  # the backoff was not waited for in close()
    assert queued[0].state == "retrying"
    assert ran == []
    assert drain(DEADLINE)  # the waiting retry is pending work
    here = threading.get_ident()
    assert len(flaky.calls) == 2
    assert flaky.calls[0] == here
    assert flaky.calls[1] != here
    assert [label for label, _ in ran] == ["after"]
    assert [task.state for task in queued] == ["succeeded", "succeeded"]


def test_an_async_task_is_retried_after_its_backoff_off_the_request_thread() -> None:
    attempts: list[float] = []

    @bgtask.task(retry=RetryPolicy(max=2, backoff=[0.1, 0.1]))
    async def webhook() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("503")

    app = BackgroundTaskMiddleware(app_queuing, offload=True)
    queued: list[BackgroundTask] = []
    request(app, lambda tasks: queued.append(tasks.add_task(webhook)))
    assert queued[0].wait(DEADLINE)
    assert queued[0].state == "succeeded"
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.09
    assert attempts[2] - attempts[1] >= 0.09


def test_a_timed_out_task_is_retried_like_any_failure() -> None:
    attempts: list[int] = []

    @bgtask.task(timeout=0.05, retry=RetryPolicy(max=1))
    async def sometimes_slow() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(30)

    tasks = BackgroundTasks()
    task = tasks.add_task(sometimes_slow)
    tasks()
    assert len(attempts) == 2
    assert task.state == "succeeded"


@pytest.mark.slow
def test_the_exit_deadline_cuts_a_waiting_retry_and_names_it() -> None:
    script = """
        import functools, logging
        import bgtask
        from bgtask import BackgroundTaskMiddleware, RetryPolicy, get_background_tasks

        logging.basicConfig(format="%(levelname)s %(message)s")

        @bgtask.task(retry=RetryPolicy(max=1, backoff=30))
        def send_email():
            raise ConnectionError("down")

        def app(environ, start_response):
            get_background_tasks().add_task(send_email)
            start_response("200 OK", [])
            return [b"ok"]

        from werkzeug.test import Client
        from bgtask.testing import closing_client
        closing_client(Client(BackgroundTaskMiddleware(app))).get("/")
    """
    result = run_python(script, env={"BGTASK_EXIT_TIMEOUT": "0.3"})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert (
        "WARNING background task __main__.send_email failed, retrying: attempt 2 of 2 in 30 s"
        in lines
    )
    assert any(
        line.startswith("ERROR background task __main__.send_email cut: exit deadline passed")
        and line.endswith("while it waited to retry")
        for line in lines
    ), result.stderr


# -- handles ----------------------------------------------------------------------------


def test_a_handle_waits_for_its_task() -> None:
    release = threading.Event()

    def blocked() -> None:
        release.wait(DEADLINE)

    app = BackgroundTaskMiddleware(app_queuing, offload=OffloadPool(threads=1))
    queued: list[BackgroundTask] = []
    request(app, lambda tasks: queued.append(tasks.add_task(blocked)))
    assert not queued[0].wait(0.01)
    release.set()
    assert queued[0].wait(DEADLINE)
    assert queued[0].state == "succeeded"


def test_task_options_have_a_readable_repr() -> None:
    assert (
        repr(TaskOptions(timeout=1))
        == "TaskOptions(timeout=1.0, retry=None, retry_on=(Exception,))"
    )


def test_options_apply_to_a_routes_fixed_tasks_and_a_responses_background(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """@background and response.background: the function's deadline holds there too."""

    @bgtask.task(timeout=0.05)
    async def slow(label: str) -> None:
        await asyncio.sleep(30)

    app = flask.Flask(__name__)
    BgTask(app)

    @app.get("/route")
    @bgtask.background(BackgroundTask(slow, "route"))
    def route() -> str:
        return "ok"

    @app.get("/response")
    def response() -> flask.Response:
        answer = flask.Response("ok")
        answer.background = BackgroundTask(slow, "response")  # type: ignore[attr-defined]
        return answer

    client = app.test_client()
    assert client.get("/route").text == "ok"
    assert client.get("/response").text == "ok"
    errors = messages(bgtask_log, logging.ERROR)
    assert len(errors) == 2
    assert all("slow timed out: its deadline of 0.05 s passed" in error for error in errors)
