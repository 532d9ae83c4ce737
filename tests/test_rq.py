"""The RQ backend: a request's tasks run as one job on ``rq worker`` processes.

The slow tests need Redis at 127.0.0.1:6379 (they skip, saying how to start it, when it is
not there); they serve ``tests.remote_app`` under gunicorn, run two ``rq worker`` processes
on a queue of their own, read what ran where from an events file, and delete the queue's
keys afterwards. The others run in-process against a closed port.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from bgtask import BackgroundTask, BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask.rq import RetryPolicy, RQBackend
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

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REDIS_URL = "redis://127.0.0.1:6379/9"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
RQ = str(Path(sys.executable).with_name("rq"))


class Mailer:
    def send(self, to: str) -> None: ...

    @classmethod
    def build(cls, to: str) -> None: ...


def unreachable_queue() -> Queue:
    # from_url: Redis(...) retries a refused connection for about 4 s by default.
    connection = Redis.from_url(f"redis://127.0.0.1:{closed_port()}")
    return Queue("bgtask-unreachable", connection=connection)


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
        (print, (threading.Lock(),), r"cannot be serialized with RQ's serializer \(pickle\)"),
    ],
    ids=["lambda", "bound-method", "unpicklable-argument"],
)
def test_what_a_worker_could_not_run_is_refused_at_add_task(
    func: Any, args: tuple[Any, ...], match: str
) -> None:
    """A lambda, a bound method, unpicklable arguments: TypeError in the request."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(func, *args)), backend=RQBackend(unreachable_queue())
    )
    with pytest.raises(TypeError, match=match):
        serve(app)


def test_a_function_defined_inside_a_function_is_refused_at_add_task() -> None:
    """A closure cannot be imported by name: TypeError naming it."""

    def local_task(to: str) -> None: ...

    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(local_task, "a@b.c")), backend=RQBackend(unreachable_queue())
    )
    with pytest.raises(TypeError, match=r"local_task on RQ queue .*defined inside a function"):
        serve(app)


@pytest.mark.parametrize(
    "task",
    [
        BackgroundTask(record, "events", "tag"),
        BackgroundTask(functools.partial(record, "events"), "tag"),
        BackgroundTask(Mailer.build, "a@b.c"),
        BackgroundTask(remote_tasks.record_async, "events", "tag"),
    ],
    ids=["function", "partial", "classmethod", "async"],
)
def test_importable_functions_and_picklable_arguments_pass_the_check(
    task: BackgroundTask,
) -> None:
    """Module-level functions (sync or async), their partials, classmethods: accepted."""
    RQBackend(unreachable_queue()).check(task)


def test_a_retry_policy_becomes_the_jobs_rq_retry() -> None:
    """One interval per retry, in whole seconds: RQ's own mechanism does the retrying."""
    backend = RQBackend(unreachable_queue(), retry=RetryPolicy(max=3, backoff=[0.5, 2]))
    assert backend._rq_retry is not None
    assert backend._rq_retry.max == 3
    assert backend._rq_retry.intervals == [1, 2, 2]


# -- Redis unreachable: nothing is lost ---------------------------------------------------


def test_with_redis_unreachable_the_tasks_run_on_the_fallback_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An OffloadPool fallback runs them in this process, in order, after a WARNING."""
    events = str(tmp_path / "events.jsonl")
    pool = OffloadPool(threads=1)
    backend = RQBackend(unreachable_queue(), fallback=pool)
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, events, "a"), BackgroundTask(record, events, "b")),
        backend=backend,
    )
    with caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
        assert pool.wait_idle(10)
    assert tags_run(Path(events)) == ["a", "b"]
    (warning,) = [r for r in caplog.records if "could not enqueue" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "with OffloadPool" in warning.getMessage()
    assert "tests.remote_tasks.record, tests.remote_tasks.record" in warning.getMessage()


def test_capture_tasks_without_running_enqueues_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Under capture_tasks(run=False) the backend is not even tried."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, "events", "a")), backend=RQBackend(unreachable_queue())
    )
    with capture_tasks(run=False) as queued, caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
    assert queued.funcs == [record]
    assert not caplog.records


# -- real workers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def queue_name() -> Iterator[str]:
    require_service("127.0.0.1", 6379, "Redis", START_REDIS)
    name = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    yield name
    _delete_queue(name)


def _delete_queue(name: str) -> None:
    """Every job the run left and every key of its queue."""
    connection = Redis.from_url(REDIS_URL)
    queue = Queue(name, connection=connection)
    registries = [
        queue.started_job_registry,
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.scheduled_job_registry,
        queue.deferred_job_registry,
    ]
    for job_id in {*queue.get_job_ids(), *(i for r in registries for i in r.get_job_ids())}:
        connection.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
    queue.delete(delete_jobs=True)
    for key in connection.scan_iter(f"*{name}*"):
        connection.delete(key)
    for key in connection.scan_iter("rq:worker:*"):
        # A burst worker leaves its record behind for a minute.
        if name.encode() in (connection.hget(key, "queues") or b""):
            connection.delete(key)
            connection.srem("rq:workers", key)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, queue_name: str) -> Iterator[list[int]]:
    """Two long-running ``rq worker`` processes (SimpleWorker: no fork per job)."""
    directory = tmp_path_factory.mktemp("rq-workers")
    command = [
        RQ, "worker",
        "--url", REDIS_URL,
        "--worker-class", "rq.worker.SimpleWorker",
        "--with-scheduler",  # RetryPolicy backoff: RQ schedules the retries
    ]  # fmt: skip
    processes = [
        WorkerProcess(
            [*command, "--name", f"{queue_name}-{i}", queue_name],
            directory / f"worker-{i}.log",
            ready="Listening on",
            env={},
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
        "BGTASK_TEST_ENGINE": "rq",
        "BGTASK_TEST_REDIS_URL": REDIS_URL,
        "BGTASK_TEST_QUEUE": queue_name,
        "BGTASK_TEST_DOWN_URL": f"redis://127.0.0.1:{closed_port()}/0",
    }
    log = tmp_path_factory.mktemp("rq-server") / "server.log"
    with Gunicorn("tests.remote_app:build()", log, threads=8, env=env) as gunicorn:
        yield gunicorn


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


def failed_job_tags(queue_name: str) -> set[str]:
    """The tags of the tasks of every job in the queue's failed job registry."""
    connection = Redis.from_url(REDIS_URL)
    queue = Queue(queue_name, connection=connection)
    tags: set[str] = set()
    for job_id in queue.failed_job_registry.get_job_ids():
        payload = Job.fetch(job_id, connection=connection).args[0]
        tags.update(task["args"][1] for task in payload["tasks"])
    return tags


@pytest.mark.slow
def test_tasks_run_on_a_worker_process_after_the_response(
    server: Gunicorn, workers: list[int], events: Path
) -> None:
    """The job starts after close(), in a worker process, and runs the tasks in order."""
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
    server: Gunicorn, workers: list[int], queue_name: str, events: Path
) -> None:
    """The job fails (in RQ's failed registry) and the task after the failure never runs."""
    post(server, "/plain/tasks", {"events": str(events), "tasks": [
        ["record", "stop-a"], ["fail", "stop-b"], ["record", "stop-c"],
    ]})  # fmt: skip
    wait_for(lambda: "stop-b" in failed_job_tags(queue_name), what="the job to fail")
    assert tags_run(events) == ["stop-a", "stop-b"]


@pytest.mark.slow
def test_continue_on_error_runs_every_task_of_the_job(
    server: Gunicorn, workers: list[int], queue_name: str, events: Path
) -> None:
    """With continue_on_error the task after the failure runs, and the job still fails."""
    post(server, "/plain/tasks", {"events": str(events), "continue_on_error": True, "tasks": [
        ["record", "go-a"], ["fail", "go-b"], ["record", "go-c"],
    ]})  # fmt: skip
    wait_for(lambda: "go-b" in failed_job_tags(queue_name), what="the job to fail")
    assert tags_run(events) == ["go-a", "go-b", "go-c"]


@pytest.mark.slow
def test_a_retry_policy_retries_the_job_from_the_task_that_failed(
    server: Gunicorn, workers: list[int], queue_name: str, events: Path
) -> None:
    """RetryPolicy(max=2, backoff=2): two retries, then RQ gives up.

    A retry skips the tasks that already succeeded: the first task runs once. RQ's
    scheduler works in whole seconds, so a 2 s backoff is at least 1 s.
    """
    post(server, "/retry/tasks", {"events": str(events), "tasks": [
        ["record", "ok-a"], ["flaky", "ok-b", 2], ["record", "ok-c"],
    ]})  # fmt: skip
    post(server, "/retry/tasks", {"events": str(events), "tasks": [
        ["flaky", "never-d", 10], ["record", "never-e"],
    ]})  # fmt: skip
    wait_for(has_run(events, "ok-c"), what="the flaky task to succeed on its third attempt")
    wait_for(lambda: "never-d" in failed_job_tags(queue_name), what="RQ to give up")
    all_events = read_events(events)
    for tag in ("ok-b", "never-d"):
        attempts = [e["time"] for e in all_events if e["event"] == "attempt" and e["tag"] == tag]
        assert len(attempts) == 3, tag
        assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(attempts))
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
def test_with_redis_unreachable_the_tasks_run_in_the_web_process_with_a_warning(
    server: Gunicorn, events: Path
) -> None:
    """A closed Redis port: the tasks run inline, in order, after a WARNING naming them."""
    post(server, "/down/tasks", {"events": str(events), "tasks": [
        ["record", "down-a"], ["record", "down-b"],
    ]})  # fmt: skip
    wait_for(has_run(events, "down-a", "down-b"), what="the tasks to run in the web process")
    assert tags_run(events) == ["down-a", "down-b"]
    assert {e["pid"] for e in tasks_run(events)} == {event(events, "view")["pid"]}
    assert (
        "could not enqueue 2 background task(s) on RQ queue 'bgtask-unreachable' "
        "(ConnectionError" in server.log()
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
    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    wait_for(
        lambda: queue.count == 0 and queue.started_job_registry.count == 0,
        what="the queue to be idle",
    )
    ran = tasks_run(events)
    assert sorted(e["tag"] for e in ran) == sorted(f"{i}-{x}" for i in range(500) for x in "ab")
    assert {e["pid"] for e in ran} <= set(workers)
    order = [e["tag"] for e in ran]
    assert all(order.index(f"{i}-a") < order.index(f"{i}-b") for i in range(500))


@pytest.mark.slow
def test_the_default_forking_worker_runs_each_job_in_a_fresh_process(
    queue_name: str, events: Path
) -> None:
    """``rq worker --burst`` forks a work horse per job; async tasks get a loop there too."""
    queue = Queue(f"{queue_name}-fork", connection=Redis.from_url(REDIS_URL))
    app = BackgroundTaskMiddleware(
        queueing(
            BackgroundTask(remote_tasks.record_async, str(events), "fork-a"),
            BackgroundTask(record, str(events), "fork-b"),
        ),
        backend=RQBackend(queue),
    )
    serve(app)
    serve(app)
    try:
        subprocess.run(
            [RQ, "worker", "--burst", "--url", REDIS_URL, queue.name],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            check=True,
            timeout=DEADLINE,
        )
    finally:
        _delete_queue(queue.name)
    ran = tasks_run(events)
    assert [e["tag"] for e in ran] == ["fork-a", "fork-b", "fork-a", "fork-b"]
    horses = [e["pid"] for e in ran]
    assert horses[0] == horses[1] != horses[2] == horses[3] != os.getpid()
