"""The Celery backend: a request's tasks run as one Celery task on ``celery worker`` processes.

The slow tests need RabbitMQ at 127.0.0.1:5672 (guest/guest; they skip, saying how to start
it, when it is not there); they serve ``tests.remote_app`` under gunicorn, run two
``celery -A tests.celery_app worker`` processes (thread pools) on a queue of their own, read
what ran where from an events file, and delete the queue afterwards. No result backend.
The others run in-process against a closed port.
"""

from __future__ import annotations

import functools
import itertools
import logging
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from celery import Celery
from kombu import Connection

from bgtask import BackgroundTask, BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask.celery import TASK_NAME, CeleryBackend
from bgtask.testing import capture_tasks

from . import remote_tasks
from .engines import (
    WorkerProcess,
    closed_port,
    event,
    has_run,
    post,
    require_service,
    tags_run,
    tasks_run,
)
from .remote_tasks import read_events, record
from .servers import DEADLINE, ROOT, Gunicorn, wait_for
from .wsgi import serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_RABBITMQ = "rabbitmq-server -detached"


class Mailer:
    def send(self, to: str) -> None: ...


def unreachable_app(**config: Any) -> Celery:
    app = Celery("bgtask_unreachable", broker=f"amqp://guest:guest@127.0.0.1:{closed_port()}//")
    app.conf.update(config)
    return app


def queueing(*tasks: BackgroundTask) -> Any:
    """A WSGI app that queues ``tasks`` as its view's collection."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        collection = get_background_tasks()
        for task in tasks:
            collection.add_task(task.func, *task.args, **task.kwargs)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


# -- checked at add_task, in the request -------------------------------------------------


@pytest.mark.parametrize(
    ("func", "args", "match"),
    [
        (lambda to: None, ("a@b.c",), "a lambda has no name a worker can import"),
        (Mailer().send, ("a@b.c",), "method bound to an object"),
        (print, ({"a", "b"},), r"cannot be serialized with Celery's task_serializer \(json\)"),
        (print, (object(),), r"cannot be serialized with Celery's task_serializer \(json\)"),
    ],
    ids=["lambda", "bound-method", "set-argument", "object-argument"],
)
def test_what_a_worker_could_not_run_is_refused_at_add_task(
    func: Any, args: tuple[Any, ...], match: str
) -> None:
    """A lambda, a bound method, arguments JSON cannot carry: TypeError in the request."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(func, *args)), backend=CeleryBackend(unreachable_app())
    )
    with pytest.raises(TypeError, match=match):
        serve(app)


def test_a_function_defined_inside_a_function_is_refused_at_add_task() -> None:
    """A closure cannot be imported by name: TypeError naming it."""

    def local_task(to: str) -> None: ...

    backend = CeleryBackend(unreachable_app(), queue="mail")
    app = BackgroundTaskMiddleware(queueing(BackgroundTask(local_task, "a@b.c")), backend=backend)
    with pytest.raises(TypeError, match=r"local_task on Celery app .*'mail': it is defined inside"):
        serve(app)


def test_the_apps_configured_serializer_decides_what_arguments_pass() -> None:
    """With task_serializer="pickle" a set passes; a lock still does not."""
    backend = CeleryBackend(
        unreachable_app(task_serializer="pickle", accept_content=["pickle", "json"])
    )
    backend.check(BackgroundTask(print, {"a", "b"}))
    with pytest.raises(TypeError, match=r"task_serializer \(pickle\)"):
        backend.check(BackgroundTask(print, threading.Lock()))


@pytest.mark.parametrize(
    "task",
    [
        BackgroundTask(record, "events", "tag"),
        BackgroundTask(functools.partial(record, "events"), "tag"),
        BackgroundTask(remote_tasks.record_async, "events", "tag"),
    ],
    ids=["function", "partial", "async"],
)
def test_importable_functions_and_json_arguments_pass_the_check(task: BackgroundTask) -> None:
    """Module-level functions (sync or async) and their partials, with JSON data: accepted."""
    CeleryBackend(unreachable_app()).check(task)


def test_building_a_backend_registers_the_task_on_the_app() -> None:
    """The worker that imports the module building the backend has bgtask's task."""
    app = unreachable_app()
    CeleryBackend(app)
    assert TASK_NAME in app.tasks


def test_a_worker_app_gets_the_task_by_including_bgtask_celery() -> None:
    """``Celery(include=["bgtask.celery"])`` registers it without building a backend."""
    code = (
        "from celery import Celery\n"
        "app = Celery(include=['bgtask.celery'])\n"
        "app.loader.import_default_modules()\n"
        f"assert {TASK_NAME!r} in app.tasks\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=DEADLINE)


# -- the broker unreachable: nothing is lost ----------------------------------------------


def test_with_the_broker_unreachable_the_tasks_run_on_the_fallback_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An OffloadPool fallback runs them in this process, in order, after a WARNING."""
    events = str(tmp_path / "events.jsonl")
    pool = OffloadPool(threads=1)
    backend = CeleryBackend(unreachable_app(), fallback=pool)
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, events, "a"), BackgroundTask(record, events, "b")),
        backend=backend,
    )
    with caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
        assert pool.wait_idle(10)
    assert tags_run(tmp_path / "events.jsonl") == ["a", "b"]
    (warning,) = [r for r in caplog.records if "could not enqueue" in r.getMessage()]
    assert "(OperationalError" in warning.getMessage()
    assert "with OffloadPool instead: tests.remote_tasks.record" in warning.getMessage()


def test_capture_tasks_without_running_sends_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Under capture_tasks(run=False) the broker is not even tried."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, "events", "a")), backend=CeleryBackend(unreachable_app())
    )
    with capture_tasks(run=False) as queued, caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
    assert queued.funcs == [record]
    assert not caplog.records


# -- real workers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def queue_name() -> Iterator[str]:
    require_service("127.0.0.1", 5672, "RabbitMQ", START_RABBITMQ)
    name = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(BROKER_URL, connect_timeout=5) as connection:
        channel = connection.default_channel
        channel.queue_delete(name)
        channel.exchange_delete(name)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, queue_name: str) -> Iterator[list[int]]:
    """Two ``celery worker`` processes, each a pool of four threads."""
    directory = tmp_path_factory.mktemp("celery-workers")
    env = {"BGTASK_TEST_BROKER_URL": BROKER_URL, "BGTASK_TEST_QUEUE": queue_name}
    command = [
        sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
        "--queues", queue_name,
        "--pool", "threads", "--concurrency", "4",
        # Without heartbeats a warm shutdown waits 10 s for the worker's event loop.
        "--without-gossip", "--without-mingle",
        "--loglevel", "INFO",
    ]  # fmt: skip
    processes = [
        WorkerProcess(
            [*command, "--hostname", f"{queue_name}-{i}@%h"],
            directory / f"worker-{i}.log",
            ready=" ready.",
            env=env,
        )
        for i in range(2)
    ]
    try:
        for process in processes:
            process.wait_ready()
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.terminate()  # all at once: they shut down in parallel
        for process in processes:
            process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, queue_name: str) -> Iterator[Gunicorn]:
    env = {
        "BGTASK_TEST_ENGINE": "celery",
        "BGTASK_TEST_BROKER_URL": BROKER_URL,
        "BGTASK_TEST_QUEUE": queue_name,
        "BGTASK_TEST_DOWN_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}//",
    }
    log = tmp_path_factory.mktemp("celery-server") / "server.log"
    with Gunicorn("tests.remote_app:build()", log, threads=8, env=env) as gunicorn:
        yield gunicorn


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


def failed_job_tags(events: Path) -> set[str]:
    """The tags of the tasks of every job that failed for good (tests.celery_app records it)."""
    return {tag for e in read_events(events) if e["event"] == "job_failed" for tag in e["tags"]}


@pytest.mark.slow
def test_tasks_run_on_a_worker_process_after_the_response(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """The Celery task is sent after close(), runs in a worker, and runs the tasks in order."""
    answer = post(server, "/plain/tasks", {"events": str(events), "tasks": [
        ["record", "a"], ["record", "b"], ["record", "c"],
    ]})  # fmt: skip
    wait_for(has_run(events, "a", "b", "c"), what="the tasks to run on a worker")
    ran = tasks_run(events)
    assert [e["tag"] for e in ran] == ["a", "b", "c"]
    assert {e["pid"] for e in ran} < set(workers)
    assert answer["pid"] == event(events, "view")["pid"] not in workers
    assert event(events, "closed")["time"] <= ran[0]["time"]


@pytest.mark.slow
def test_a_failing_task_stops_the_rest_of_its_job(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """The Celery task fails and the task after the failure never runs."""
    post(server, "/plain/tasks", {"events": str(events), "tasks": [
        ["record", "stop-a"], ["fail", "stop-b"], ["record", "stop-c"],
    ]})  # fmt: skip
    wait_for(lambda: "stop-b" in failed_job_tags(events), what="the job to fail")
    assert tags_run(events) == ["stop-a", "stop-b"]


@pytest.mark.slow
def test_continue_on_error_runs_every_task_of_the_job(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """With continue_on_error the task after the failure runs, and the job still fails."""
    post(server, "/plain/tasks", {"events": str(events), "continue_on_error": True, "tasks": [
        ["record", "go-a"], ["fail", "go-b"], ["record", "go-c"],
    ]})  # fmt: skip
    wait_for(lambda: "go-b" in failed_job_tags(events), what="the job to fail")
    assert tags_run(events) == ["go-a", "go-b", "go-c"]


@pytest.mark.slow
def test_a_retry_policy_retries_the_job_from_the_task_that_failed(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """RetryPolicy(max=2, backoff=0.5): Task.retry twice, 0.5 s apart, then Celery gives up.

    A retry skips the tasks that already succeeded: the first task runs once.
    """
    post(server, "/retry/tasks", {"events": str(events), "tasks": [
        ["record", "ok-a"], ["flaky", "ok-b", 2], ["record", "ok-c"],
    ]})  # fmt: skip
    post(server, "/retry/tasks", {"events": str(events), "tasks": [
        ["flaky", "never-d", 10], ["record", "never-e"],
    ]})  # fmt: skip
    wait_for(has_run(events, "ok-c"), what="the flaky task to succeed on its third attempt")
    wait_for(lambda: "never-d" in failed_job_tags(events), what="Celery to give up")
    all_events = read_events(events)
    for tag in ("ok-b", "never-d"):
        attempts = [e["time"] for e in all_events if e["event"] == "attempt" and e["tag"] == tag]
        assert len(attempts) == 3, tag
        assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(attempts))
    assert sorted(tags_run(events)) == ["ok-a", "ok-b", "ok-c"]


@pytest.mark.slow
def test_async_tasks_run_on_the_workers_event_loop(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """An async def task runs in the worker process, on bgtask's loop thread, in order."""
    post(server, "/plain/tasks", {"events": str(events), "tasks": [
        ["async", "async-a"], ["record", "async-b"], ["async", "async-c"],
    ]})  # fmt: skip
    wait_for(has_run(events, "async-a", "async-b", "async-c"), what="the async tasks")
    ran = tasks_run(events)
    assert [e["tag"] for e in ran] == ["async-a", "async-b", "async-c"]
    assert {e["pid"] for e in ran} < set(workers)
    assert all(e["thread"] != e["pid"] for e in ran if e["kind"] == "async")  # not main


@pytest.mark.slow
def test_with_the_broker_unreachable_the_tasks_run_in_the_web_process_with_a_warning(
    server: Gunicorn, events: Path
) -> None:
    """A closed broker port: the tasks run inline, in order, after a WARNING naming them."""
    post(server, "/down/tasks", {"events": str(events), "tasks": [
        ["record", "down-a"], ["record", "down-b"],
    ]})  # fmt: skip
    wait_for(has_run(events, "down-a", "down-b"), what="the tasks to run in the web process")
    assert tags_run(events) == ["down-a", "down-b"]
    assert {e["pid"] for e in tasks_run(events)} == {event(events, "view")["pid"]}
    assert "could not enqueue 2 background task(s) on Celery app 'bgtask_unreachable'" in (
        server.log()
    )
    assert "inline instead: tests.remote_tasks.record, tests.remote_tasks.record" in server.log()


@pytest.mark.slow
def test_every_task_of_500_requests_runs_exactly_once_on_the_workers(
    server: Gunicorn, workers: list[int], queue_name: str, events: Path
) -> None:
    """500 requests with two tasks each, 8 clients at once: 1000 runs, no more, no less."""

    def request(i: int) -> None:
        post(server, "/plain/tasks", {"events": str(events), "tasks": [
            ["record", f"{i}-a"], ["record", f"{i}-b"],
        ]})  # fmt: skip

    with ThreadPoolExecutor(8) as clients:
        list(clients.map(request, range(500)))
    wait_for(lambda: len(tasks_run(events)) >= 1000, timeout=30, what="1000 tasks to run")
    with Connection(BROKER_URL, connect_timeout=5) as connection:
        declared = connection.default_channel.queue_declare(queue_name, passive=True)
    assert declared.message_count == 0
    ran = tasks_run(events)
    assert sorted(e["tag"] for e in ran) == sorted(f"{i}-{x}" for i in range(500) for x in "ab")
    assert {e["pid"] for e in ran} <= set(workers)
    order = [e["tag"] for e in ran]
    assert all(order.index(f"{i}-a") < order.index(f"{i}-b") for i in range(500))
