"""What only the RQ backend does; the scenarios it shares with Celery are in test_engines.py."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest
from redis import Redis
from rq import Queue

from bgtask import BackgroundTask, BackgroundTaskMiddleware
from bgtask._job import PAYLOAD_VERSION
from bgtask.rq import RetryPolicy, RQBackend

from .apps import remote_tasks
from .apps.remote_tasks import DECLARED, record
from .helpers.deployments import (
    REDIS_URL,
    RQ,
    delete_rq_queue,
    queueing,
    rq_queue_name,
    unreachable_queue,
)
from .helpers.engines import tasks_run
from .helpers.servers import DEADLINE, ROOT
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def test_a_retry_policy_becomes_the_jobs_rq_retry() -> None:
    """One interval per retry, in whole seconds: RQ's own mechanism does the retrying."""
    backend = RQBackend(unreachable_queue(), retry=RetryPolicy(max=3, backoff=[0.5, 2]))
    assert backend._rq_retry is not None
    assert backend._rq_retry.max == 3
    assert backend._rq_retry.intervals == [1, 2, 2]


def test_a_queue_with_the_json_serializer_refuses_what_json_cannot_carry() -> None:
    """The check uses the queue's own serializer: with RQ's JSONSerializer a lock fails."""
    from rq.serializers import JSONSerializer

    connection = unreachable_queue().connection
    queue = Queue("bgtask-json", connection=connection, serializer=JSONSerializer)
    with pytest.raises(TypeError, match=r"RQ's serializer \(JSON\)"):
        RQBackend(queue).check(BackgroundTask(print, threading.Lock()))


@pytest.fixture
def queue_name() -> Iterator[str]:
    with rq_queue_name() as name:
        yield name


@pytest.mark.slow
def test_the_default_forking_worker_runs_each_job_in_a_fresh_process(
    queue_name: str, tmp_path: Path
) -> None:
    """``rq worker --burst`` forks a work horse per job; async tasks get a loop there too."""
    events = tmp_path / "events.jsonl"
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
        delete_rq_queue(queue.name)
    ran = tasks_run(events)
    assert [e["tag"] for e in ran] == ["fork-a", "fork-b", "fork-a", "fork-b"]
    horses = [e["pid"] for e in ran]
    assert horses[0] == horses[1] != horses[2] == horses[3] != os.getpid()


def burst_worker(queue: str, *options: str, env: dict[str, str] | None = None) -> str:
    """Run ``rq worker --burst`` on ``queue`` until it is empty; what it logged."""
    result = subprocess.run(
        [RQ, "worker", "--burst", "--url", REDIS_URL, *options, queue],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=DEADLINE,
    )
    return result.stdout + result.stderr


@pytest.mark.slow
def test_a_worker_started_with_the_backends_module_runs_declared_jobs_and_one_without_refuses(
    queue_name: str, tmp_path: Path
) -> None:
    """``rq worker -c tests.apps.rq_worker_settings`` builds the backend: it knows the tasks.

    Without ``-c`` the worker has no allow-list for the queue, and a job that was queued
    with declared tasks is refused whole, saying how to start the worker.
    """
    events = tmp_path / "events.jsonl"
    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, str(events), "declared")),
        backend=RQBackend(queue, tasks=DECLARED),
    )
    serve(app)
    log = burst_worker(queue_name)
    assert tasks_run(events) == []
    assert "this worker declares none for queue" in log
    assert "start the worker with `rq worker -c yourapp.module ...`" in log

    serve(app)
    settings = {"BGTASK_TEST_QUEUE": queue_name, "BGTASK_TEST_REDIS_URL": REDIS_URL}
    burst_worker(queue_name, "-c", "tests.apps.rq_worker_settings", env=settings)
    assert [e["tag"] for e in tasks_run(events)] == ["declared"]


@pytest.mark.slow
def test_without_an_allow_list_a_worker_checks_every_name_before_importing_any(
    queue_name: str, tmp_path: Path
) -> None:
    """RQ's trust model stays, but a malformed name refuses the job before any import."""
    marker = tmp_path / "imported"
    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    payload = {
        "bgtask": PAYLOAD_VERSION,
        "declared": False,
        "continue_on_error": True,
        "tasks": [
            {"func": "tests.apps.import_side_effect:run", "args": [], "kwargs": {}},
            {"func": "os:system\nERROR bgtask forged line", "args": [], "kwargs": {}},
        ],
    }
    queue.enqueue_call("bgtask.rq.run_job", args=(payload,))
    log = burst_worker(queue_name, env={"BGTASK_TEST_IMPORT_MARKER": str(marker)})
    assert "not a module:qualname name (nothing was imported)" in log
    assert r"'os:system\nERROR bgtask forged line'" in log
    assert not marker.exists()
