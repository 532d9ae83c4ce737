"""RQ and Celery, the same scenarios: a request's tasks run as one job on worker processes.

The in-process tests use an engine on a closed port. The slow ones need Redis at
127.0.0.1:6379 or RabbitMQ at 127.0.0.1:5672 (they skip, saying how to start it, when it is
not there); they serve ``tests.apps.remote_app`` under gunicorn, run two workers on a queue of
their own, and read what ran where from an events file (``tests/helpers/deployments.py``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from bgtask import BackgroundTask, BackgroundTaskMiddleware, OffloadPool
from bgtask._job import PAYLOAD_VERSION
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend
from bgtask.testing import capture_tasks

from .apps import remote_tasks
from .apps.remote_tasks import DECLARED, read_events, record
from .helpers.deployments import (
    DEPLOYMENTS,
    Deployment,
    Mailer,
    queueing,
    unreachable_app,
    unreachable_queue,
)
from .helpers.engines import event, has_run, post, tags_run, tasks_run
from .helpers.servers import wait_for
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bgtask import Backend


def rq_backend(fallback: Backend | None = None) -> RQBackend:
    return RQBackend(unreachable_queue(), fallback=fallback)


def celery_backend(fallback: Backend | None = None) -> CeleryBackend:
    return CeleryBackend(
        unreachable_app(), fallback=fallback, tasks=[*DECLARED, print, Mailer.build]
    )


UNREACHABLE: dict[str, Callable[..., Backend]] = {"rq": rq_backend, "celery": celery_backend}
#: Arguments each engine's default serializer refuses, and how the error says so.
UNSERIALIZABLE: dict[str, tuple[tuple[Any, ...], str]] = {
    "rq": (
        (threading.Lock(),),
        r"positional argument 1 \(of type lock\) cannot be serialized with RQ's serializer "
        r"\(pickle\)",
    ),
    "celery": (
        ({"a", "b"},),
        r"positional argument 1 \(of type set\) cannot be serialized with Celery's "
        r"task_serializer \(json\)",
    ),
}


@pytest.fixture(params=["rq", "celery"])
def unreachable(request: pytest.FixtureRequest) -> Callable[..., Backend]:
    """A backend of each engine whose server is a closed port."""
    factory: Callable[..., Backend] = UNREACHABLE[request.param]
    return factory


# -- checked at add_task, in the request -------------------------------------------------


@pytest.mark.parametrize("engine", ["rq", "celery"])
@pytest.mark.parametrize("case", ["lambda", "bound-method", "unserializable-argument"])
def test_what_a_worker_could_not_run_is_refused_at_add_task(engine: str, case: str) -> None:
    """A lambda, a bound method, arguments the engine cannot carry: TypeError in the request."""
    func: Any
    if case == "lambda":
        func, args, match = (lambda to: None), ("a@b.c",), "a lambda has no name a worker can"
    elif case == "bound-method":
        func, args, match = Mailer().send, ("a@b.c",), "method bound to an object"
    else:
        func, (args, match) = print, UNSERIALIZABLE[engine]
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(func, *args)), backend=UNREACHABLE[engine]()
    )
    with pytest.raises(TypeError, match=match):
        serve(app)


def test_a_function_defined_inside_a_function_is_refused_at_add_task(
    unreachable: Callable[..., Backend],
) -> None:
    """A closure cannot be imported by name: TypeError naming it and where it was going."""

    def local_task(to: str) -> None: ...

    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(local_task, "a@b.c")), backend=unreachable()
    )
    with pytest.raises(TypeError, match=r"local_task on (RQ queue|Celery app) .*defined inside"):
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
def test_importable_functions_and_plain_arguments_pass_the_check(
    unreachable: Callable[..., Backend], task: BackgroundTask
) -> None:
    """Module-level functions (sync or async), their partials, classmethods: accepted."""
    check = getattr(unreachable(), "check")  # noqa: B009 (Backend's check is optional)
    check(task)


# -- the engine unreachable: nothing is lost ----------------------------------------------


def test_with_the_engine_unreachable_the_tasks_run_on_the_fallback_with_a_warning(
    unreachable: Callable[..., Backend], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An OffloadPool fallback runs them in this process, in order, after a WARNING."""
    events_file = str(tmp_path / "events.jsonl")
    pool = OffloadPool(threads=1)
    app = BackgroundTaskMiddleware(
        queueing(
            BackgroundTask(record, events_file, "a"), BackgroundTask(record, events_file, "b")
        ),
        backend=unreachable(fallback=pool),
    )
    with caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
        assert pool.wait_idle(10)
    assert tags_run(tmp_path / "events.jsonl") == ["a", "b"]
    (warning,) = [r for r in caplog.records if "could not enqueue" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert (
        "with OffloadPool instead: tests.apps.remote_tasks.record, tests.apps.remote_tasks.record"
        in warning.getMessage()
    )


def test_capture_tasks_without_running_sends_nothing(
    unreachable: Callable[..., Backend], caplog: pytest.LogCaptureFixture
) -> None:
    """Under capture_tasks(run=False) the engine is not even tried."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, "events", "a")), backend=unreachable()
    )
    with capture_tasks(run=False) as queued, caplog.at_level(logging.WARNING, logger="bgtask"):
        serve(app)
    assert queued.funcs == [record]
    assert not caplog.records


# -- real workers --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["rq", "celery"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with DEPLOYMENTS[request.param](tmp_path_factory) as deployed:
        yield deployed


@pytest.mark.slow
def test_tasks_run_on_a_worker_process_after_the_response(
    deployment: Deployment, events_file: Path
) -> None:
    """The job starts after close(), in a worker process, and runs the tasks in order."""
    answer = post(deployment.server, "/plain/tasks", {"events": str(events_file), "tasks": [
        ["record", "a"], ["record", "b"], ["record", "c"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "a", "b", "c"), what="the tasks to run on a worker")
    ran = tasks_run(events_file)
    assert [e["tag"] for e in ran] == ["a", "b", "c"]
    assert {e["pid"] for e in ran} < set(deployment.workers)
    assert answer["pid"] == event(events_file, "view")["pid"] not in deployment.workers
    assert event(events_file, "closed")["time"] <= ran[0]["time"]


@pytest.mark.slow
@pytest.mark.parametrize("continue_on_error", [False, True])
def test_a_failing_task_fails_the_job_and_stops_the_rest_unless_continue_on_error(
    deployment: Deployment, events_file: Path, continue_on_error: bool
) -> None:
    """The job fails for good; the task after the failure runs only with continue_on_error."""
    tag = "go" if continue_on_error else "stop"
    post(deployment.server, "/plain/tasks", {
        "events": str(events_file), "continue_on_error": continue_on_error,
        "tasks": [["record", f"{tag}-a"], ["fail", f"{tag}-b"], ["record", f"{tag}-c"]],
    })  # fmt: skip
    wait_for(lambda: f"{tag}-b" in deployment.failed_tags(events_file), what="the job to fail")
    expected = [f"{tag}-a", f"{tag}-b"] + ([f"{tag}-c"] if continue_on_error else [])
    assert tags_run(events_file) == expected


@pytest.mark.slow
def test_a_retry_policy_retries_the_job_from_the_task_that_failed(
    deployment: Deployment, events_file: Path
) -> None:
    """RetryPolicy(max=2): two retries, then the engine gives up.

    A retry skips the tasks that already succeeded: the first task runs once.
    """
    post(deployment.server, "/retry/tasks", {"events": str(events_file), "tasks": [
        ["record", "ok-a"], ["flaky", "ok-b", 2], ["record", "ok-c"],
    ]})  # fmt: skip
    post(deployment.server, "/retry/tasks", {"events": str(events_file), "tasks": [
        ["flaky", "never-d", 10], ["record", "never-e"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "ok-c"), what="the flaky task to succeed on its third attempt")
    wait_for(lambda: "never-d" in deployment.failed_tags(events_file), what="the engine to give up")
    all_events = read_events(events_file)
    for tag in ("ok-b", "never-d"):
        attempts = [e["time"] for e in all_events if e["event"] == "attempt" and e["tag"] == tag]
        assert len(attempts) == 3, tag
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
        assert all(gap >= deployment.retry_gap for gap in gaps), gaps
    assert sorted(tags_run(events_file)) == ["ok-a", "ok-b", "ok-c"]


@pytest.mark.slow
def test_a_tasks_own_retry_options_apply_on_the_worker(
    deployment: Deployment, events_file: Path
) -> None:
    """@bgtask.task(retry=...): the worker retries the task in place, the job succeeds once."""
    post(deployment.server, "/plain/tasks", {"events": str(events_file), "tasks": [
        ["record", "opt-a"], ["flaky_with_options", "opt-b", 2], ["record", "opt-c"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "opt-c"), what="the task to succeed on its third attempt")
    all_events = read_events(events_file)
    attempts = [e for e in all_events if e["event"] == "attempt" and e["tag"] == "opt-b"]
    assert len(attempts) == 3
    assert len({e["pid"] for e in attempts}) == 1  # in place, on one worker
    assert all(
        later["time"] - earlier["time"] >= 0.19 for earlier, later in itertools.pairwise(attempts)
    )
    assert tags_run(events_file) == ["opt-a", "opt-b", "opt-c"]
    assert "opt-b" not in deployment.failed_tags(events_file)


@pytest.mark.slow
def test_a_jobs_tasks_deadlines_become_the_engines_own_time_limit(
    deployment: Deployment, events_file: Path
) -> None:
    """Two tasks with a 2 s deadline: a 4 s budget, the engine's limit 5 s above it."""
    post(deployment.server, "/plain/tasks", {"events": str(events_file), "tasks": [
        ["report_limits", "lim-a"], ["report_limits", "lim-b"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "lim-a", "lim-b"), what="the tasks to report their limits")
    limits = {e["tag"]: e["limits"] for e in tasks_run(events_file)}
    expected = 9 if deployment.engine == "rq" else {"soft": 9, "hard": 14}
    assert limits == {"lim-a": expected, "lim-b": expected}


@pytest.mark.slow
def test_async_tasks_run_on_the_workers_event_loop(
    deployment: Deployment, events_file: Path
) -> None:
    """An async def task runs in the worker process, on bgtask's loop thread, in order."""
    post(deployment.server, "/plain/tasks", {"events": str(events_file), "tasks": [
        ["async", "async-a"], ["record", "async-b"], ["async", "async-c"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "async-a", "async-b", "async-c"), what="the async tasks")
    ran = tasks_run(events_file)
    assert [e["tag"] for e in ran] == ["async-a", "async-b", "async-c"]
    assert {e["pid"] for e in ran} < set(deployment.workers)
    assert all(e["thread"] != e["pid"] for e in ran if e["kind"] == "async")  # not main


@pytest.mark.slow
def test_with_the_engine_unreachable_the_tasks_run_in_the_web_process_with_a_warning(
    deployment: Deployment, events_file: Path
) -> None:
    """A closed port: the tasks run inline, in order, after a WARNING naming them."""
    post(deployment.server, "/down/tasks", {"events": str(events_file), "tasks": [
        ["record", "down-a"], ["record", "down-b"],
    ]})  # fmt: skip
    wait_for(has_run(events_file, "down-a", "down-b"), what="the tasks to run in the web process")
    assert tags_run(events_file) == ["down-a", "down-b"]
    assert {e["pid"] for e in tasks_run(events_file)} == {event(events_file, "view")["pid"]}
    log = deployment.server.log()
    assert f"could not enqueue 2 background task(s) {deployment.unreachable}" in log
    assert "inline instead: tests.apps.remote_tasks.record, tests.apps.remote_tasks.record" in log


@pytest.mark.slow
def test_every_task_of_500_requests_runs_exactly_once_on_the_workers(
    deployment: Deployment, events_file: Path
) -> None:
    """500 requests with two tasks each, 8 clients at once: 1000 runs, no more, no less."""

    def request(i: int) -> None:
        post(deployment.server, "/plain/tasks", {"events": str(events_file), "tasks": [
            ["record", f"{i}-a"], ["record", f"{i}-b"],
        ]})  # fmt: skip

    with ThreadPoolExecutor(8) as clients:
        list(clients.map(request, range(500)))
    wait_for(lambda: len(tasks_run(events_file)) >= 1000, timeout=30, what="1000 tasks to run")
    wait_for(deployment.queue_idle, what="the queue to be idle")
    ran = tasks_run(events_file)
    assert sorted(e["tag"] for e in ran) == sorted(f"{i}-{x}" for i in range(500) for x in "ab")
    assert {e["pid"] for e in ran} <= set(deployment.workers)
    order = [e["tag"] for e in ran]
    assert all(order.index(f"{i}-a") < order.index(f"{i}-b") for i in range(500))


# -- what a broker writer can make a worker do ------------------------------------------------


def crafted(*tasks: dict[str, Any], version: object = PAYLOAD_VERSION) -> dict[str, Any]:
    """A payload written straight to the broker, not by a bgtask backend."""
    return {"bgtask": version, "declared": True, "continue_on_error": True, "tasks": list(tasks)}


def refused(deployment: Deployment, job_id: str) -> Callable[[], bool]:
    return lambda: f"refused to run {deployment.job_kind} {job_id}:" in deployment.worker_logs()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["undeclared", "os-system"])
def test_a_job_naming_an_undeclared_function_is_refused_and_nothing_runs(
    deployment: Deployment, tmp_path: Path, target: str
) -> None:
    """An importable test function, or os:system: an ERROR, the job fails, no file appears."""
    marker = tmp_path / "marker"
    task = (
        {"func": "tests.apps.remote_tasks:write_marker", "args": [str(marker)], "kwargs": {}}
        if target == "undeclared"
        else {"func": "os:system", "args": [f"touch {marker}"], "kwargs": {}}
    )
    job_id = deployment.publish(crafted(task))
    wait_for(refused(deployment, job_id), what="the worker to refuse the job")
    name = "tests.apps.remote_tasks:write_marker" if target == "undeclared" else "os:system"
    assert (
        f"not declared on this worker (an allow-list applies; nothing was imported): '{name}'"
        in (deployment.worker_logs())
    )
    wait_for(deployment.queue_idle, what="the queue to be idle")
    assert not marker.exists()


@pytest.mark.slow
def test_one_undeclared_entry_refuses_the_declared_ones_too(
    deployment: Deployment, events_file: Path, tmp_path: Path
) -> None:
    """The whole payload is checked before anything runs."""
    job_id = deployment.publish(
        crafted(
            {
                "func": "tests.apps.remote_tasks:record",
                "args": [str(events_file), "first"],
                "kwargs": {},
            },
            {"func": "os:system", "args": [f"touch {tmp_path / 'marker'}"], "kwargs": {}},
        )
    )
    wait_for(refused(deployment, job_id), what="the worker to refuse the job")
    wait_for(deployment.queue_idle, what="the queue to be idle")
    assert tasks_run(events_file) == []
    assert not (tmp_path / "marker").exists()


@pytest.mark.slow
def test_a_job_of_an_unknown_payload_version_is_refused(
    deployment: Deployment, events_file: Path
) -> None:
    """Another bgtask's format: an ERROR naming it, nothing runs."""
    task = {"func": "tests.apps.remote_tasks:record", "args": [str(events_file), "v"], "kwargs": {}}
    job_id = deployment.publish(crafted(task, version=99))
    wait_for(refused(deployment, job_id), what="the worker to refuse the job")
    assert "it was queued with payload format 99, this worker reads" in deployment.worker_logs()
    assert tasks_run(events_file) == []


@pytest.mark.slow
def test_a_name_with_a_newline_is_logged_escaped_and_no_module_is_imported_for_it(
    deployment: Deployment,
) -> None:
    """A forged log line stays inside the escaped name; a module named is never imported."""
    job_id = deployment.publish(
        crafted(
            {"func": "tests.apps.import_side_effect:run", "args": [], "kwargs": {}},
            {"func": "os:system\nERROR bgtask forged line", "args": [], "kwargs": {}},
        )
    )
    wait_for(refused(deployment, job_id), what="the worker to refuse the job")
    logs = deployment.worker_logs()
    assert r"'os:system\nERROR bgtask forged line'" in logs
    assert not any(line.startswith("ERROR bgtask forged") for line in logs.splitlines())
    assert not deployment.import_marker.exists()


@pytest.mark.slow
def test_a_failed_jobs_record_carries_each_failed_tasks_own_exception(
    deployment: Deployment, events_file: Path
) -> None:
    """RQ's failed job registry and Celery's failure show why: type, message, traceback."""
    post(deployment.server, "/plain/tasks", {
        "events": str(events_file), "tasks": [["record", "why-a"], ["fail", "why-b"]],
    })  # fmt: skip
    wait_for(lambda: "why-b" in deployment.failed_tags(events_file), what="the job to fail")
    wait_for(lambda: bool(deployment.failure_records(events_file)), what="the failure record")
    (record,) = deployment.failure_records(events_file)
    assert "1 background task(s) did not succeed" in record
    assert "tests.apps.remote_tasks.fail failed:" in record
    assert "RuntimeError: this task fails on purpose" in record
    assert "in fail\n    raise RuntimeError(msg)" in record  # the task's own traceback


@pytest.mark.slow
def test_worker_context_runs_a_flask_apps_tasks_in_its_app_context_on_the_workers(
    deployment: Deployment, events_file: Path
) -> None:
    """worker_context(create_app) in the module the worker imports: current_app works."""
    post(deployment.server, "/plain/tasks", {
        "events": str(events_file), "tasks": [["app", "flask-a"], ["app", "flask-b"]],
    })  # fmt: skip
    wait_for(has_run(events_file, "flask-a", "flask-b"), what="both Flask tasks")
    ran = tasks_run(events_file)
    assert {(e["app"], e["greeting"]) for e in ran} == {
        ("bgtask_worker_app", "hello from the worker")
    }
    assert {e["pid"] for e in ran} <= set(deployment.workers)
