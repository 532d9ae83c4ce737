"""What only the Celery backend does; the scenarios it shares with RQ are in test_engines.py."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import uuid
from typing import TYPE_CHECKING

import pytest
from celery import Celery
from kombu import Connection

from bgtask import BackgroundTask, BackgroundTaskMiddleware, BackgroundTasks
from bgtask._job import PAYLOAD_VERSION, JobRefused
from bgtask._payload import encode
from bgtask.celery import TASK_NAME, CeleryBackend

from .apps.remote_tasks import record
from .helpers.deployments import (
    BROKER_URL,
    START_RABBITMQ,
    celery_deployment,
    queueing,
    unreachable_app,
)
from .helpers.engines import has_run, post, require_service, tasks_run
from .helpers.netfaults import Proxy
from .helpers.servers import DEADLINE, ROOT, wait_for
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from pathlib import Path


def test_an_object_json_cannot_carry_is_refused_at_check() -> None:
    """JSON, Celery's default, carries no arbitrary object."""
    with pytest.raises(TypeError, match=r"cannot be serialized with Celery's task_serializer"):
        CeleryBackend(unreachable_app(), tasks=[print]).check(BackgroundTask(print, object()))


def test_the_apps_configured_serializer_decides_what_arguments_pass() -> None:
    """With task_serializer="pickle" a set passes; a lock still does not."""
    backend = CeleryBackend(
        unreachable_app(task_serializer="pickle", accept_content=["pickle", "json"]),
        tasks=[print],
    )
    backend.check(BackgroundTask(print, {"a", "b"}))
    with pytest.raises(TypeError, match=r"task_serializer \(pickle\)"):
        backend.check(BackgroundTask(print, threading.Lock()))


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


def test_a_worker_app_without_a_backend_declaring_tasks_refuses_every_job(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """``include=["bgtask.celery"]`` registers the task, but only declared tasks ever run."""
    app = unreachable_app()
    payload = {"bgtask": PAYLOAD_VERSION, "declared": True, "continue_on_error": False, "tasks": []}
    with pytest.raises(JobRefused, match="no CeleryBackend declares tasks on this worker's app"):
        app.tasks[TASK_NAME].apply(args=[payload], throw=True)


def test_the_task_runs_the_functions_declared_on_its_own_app(tmp_path: Path) -> None:
    """The registry is the app's: another app's declarations do not count."""
    events = tmp_path / "events.jsonl"
    declaring, other = unreachable_app(), unreachable_app()
    CeleryBackend(declaring, tasks=[record])
    CeleryBackend(other)
    payload = encode(BackgroundTasks([BackgroundTask(record, str(events), "a")]), declared=True)
    declaring.tasks[TASK_NAME].apply(args=[payload], throw=True)
    assert [e["tag"] for e in tasks_run(events)] == ["a"]
    with pytest.raises(JobRefused, match="not declared on this worker"):
        other.tasks[TASK_NAME].apply(args=[payload], throw=True)


@pytest.mark.slow
def test_after_the_broker_closed_a_pooled_connection_the_next_publish_reconnects_first(
    tmp_path: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A RabbitMQ restart between two requests: the message is sent on a new connection,
    not lost on the old one (a publish cannot be retried without risking a duplicate)."""
    require_service("127.0.0.1", 5672, "RabbitMQ", START_RABBITMQ)
    queue = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    events = str(tmp_path / "events.jsonl")

    def queued() -> int:
        with Connection(BROKER_URL, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            try:
                declared = connection.default_channel.queue_declare(queue, passive=True)
            except connection.channel_errors:
                return 0  # not declared yet: the first publish declares it
            return int(declared.message_count)

    try:
        with Proxy(("127.0.0.1", 5672)) as proxy:
            app = Celery("bgtask_restart", broker=f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
            backend = CeleryBackend(app, queue=queue, tasks=[record])
            try:
                for count, tag in enumerate(("before", "after"), 1):
                    serve(BackgroundTaskMiddleware(
                        queueing(BackgroundTask(record, events, tag)), backend=backend
                    ))  # fmt: skip
                    wait_for(lambda: queued() == count, what=f"message {count} at the broker")  # noqa: B023 (waited for here)
                    proxy.drop_connections()  # the broker restarts
            finally:
                app.close()
    finally:
        with Connection(BROKER_URL, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            connection.default_channel.queue_delete(queue)
            connection.default_channel.exchange_delete(queue)
    assert not [r for r in bgtask_log.records if r.levelno >= logging.WARNING]
    assert tasks_run(tmp_path / "events.jsonl") == []  # none ran here


def test_a_task_id_from_the_message_is_logged_escaped(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """The message chooses its id too: a newline in it cannot forge a log line."""
    app = unreachable_app()
    CeleryBackend(app, tasks=[record])
    with pytest.raises(JobRefused):
        app.tasks[TASK_NAME].apply(args=[{"bgtask": 99}], task_id="1\nERROR forged", throw=True)
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert error.startswith(r"refused to run Celery task '1\nERROR forged': ")


@pytest.mark.slow
def test_a_celery_workers_log_names_the_tasks_of_each_job_never_their_arguments(
    tmp_path_factory: pytest.TempPathFactory, events_file: Path
) -> None:
    """The message's shadow name is "bgtask: <the functions>", not bgtask.run_collection."""
    events = events_file
    with celery_deployment(tmp_path_factory) as deployment:
        post(deployment.server, "/plain/tasks", {
            "events": str(events), "tasks": [["record", "secret-tag-1"], ["async", "secret-tag-2"]],
        })  # fmt: skip
        wait_for(has_run(events, "secret-tag-1", "secret-tag-2"), what="both tasks")
        wait_for(lambda: "succeeded in" in deployment.worker_logs(), what="the worker's log")
        logs = deployment.worker_logs()
    names = "bgtask: tests.apps.remote_tasks.record, tests.apps.remote_tasks.record_async"
    assert f"Task {names}[" in logs
    assert "secret-tag" not in logs
