"""A hand-off that fails after it was sent never runs its tasks twice (web and worker).

A TCP proxy of the test's own (``tests.helpers.netfaults.Proxy``) stands between the web side and
the real Redis at 127.0.0.1:6379 (skipped when absent); a real ``rq worker`` reads the
queue directly. The proxy withholds Redis's answers once the job is stored, or holds the
enqueue itself and lets it through later: each time ``close()`` returns within the
deadline and every task runs exactly once, on the worker or here.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import TYPE_CHECKING

import pytest
from celery import Celery
from redis import Redis
from rq import Queue

from bgtask import BackgroundTask, BackgroundTaskMiddleware
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend

from .apps.remote_tasks import DECLARED, record
from .helpers.deployments import (
    REDIS_URL,
    RQ,
    START_REDIS,
    delete_rq_queue,
    queueing,
    rq_queue_name,
)
from .helpers.engines import WorkerProcess, require_service, tasks_run
from .helpers.netfaults import Proxy
from .helpers.servers import wait_for
from .helpers.wsgi import Call

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def queue_name() -> Iterator[str]:
    with rq_queue_name() as name:
        yield name


@pytest.fixture(scope="module")
def worker(queue_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One long-running ``rq worker`` (SimpleWorker), reading Redis without the proxy."""
    log = tmp_path_factory.mktemp("rq-worker") / "worker.log"
    command = [
        RQ, "worker", "--url", REDIS_URL, "--worker-class", "rq.worker.SimpleWorker",
        "--name", f"{queue_name}-0", queue_name,
    ]  # fmt: skip
    process = WorkerProcess(command, log, ready="Listening on", env={})
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        delete_rq_queue(queue_name)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    require_service("127.0.0.1", 6379, "Redis", START_REDIS)
    with Proxy(("127.0.0.1", 6379)) as running:
        yield running


def request(backend: RQBackend | CeleryBackend, events: Path, tag: str) -> float:
    """One request queueing ``record(events, tag)``; how long its close() took."""
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, str(events), tag)), backend=backend
    )
    call = Call(app)
    call.body()
    started = time.monotonic()
    call.close()
    return time.monotonic() - started


def ran(events: Path, tag: str) -> list[int]:
    """The pids that ran ``tag``, once per run."""
    return [e["pid"] for e in tasks_run(events) if e["tag"] == tag]


def warmed_up(queue_name: str, proxy: Proxy, events: Path, worker: WorkerProcess) -> RQBackend:
    """A backend through the proxy whose connection, script and server version are cached,
    so that the next enqueue sends its job in one command (``EVALSHA``)."""
    connection = Redis.from_url(f"redis://127.0.0.1:{proxy.port}/9")
    backend = RQBackend(Queue(queue_name, connection=connection))
    request(backend, events, "warm")
    wait_for(lambda: ran(events, "warm") == [worker.pid], what="the warm-up job to run")
    return backend


def queue_idle(queue_name: str) -> bool:
    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    return queue.count == 0 and queue.started_job_registry.count == 0


def test_answers_lost_after_redis_stored_the_job_it_runs_once_on_the_worker(
    queue_name: str, worker: WorkerProcess, proxy: Proxy, tmp_path: Path,
    bgtask_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The job is in Redis, no answer comes back: the web does not run it, the worker does."""
    events = tmp_path / "events.jsonl"
    backend = warmed_up(queue_name, proxy, events, worker)
    proxy.withhold_replies_after(b"EVALSHA")
    elapsed = request(backend, events, "lost-answer")
    assert elapsed < 1.5  # the send's deadline, then the claim's
    assert os.getpid() not in ran(events, "lost-answer")  # not here
    wait_for(lambda: ran(events, "lost-answer") != [], what="the worker to run the job")
    wait_for(lambda: queue_idle(queue_name), what="the queue to be idle")
    assert ran(events, "lost-answer") == [worker.pid]
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "could not tell whether job" in error
    assert "not running its 1 background task(s) here, so that none runs twice" in error


def test_an_enqueue_applied_late_is_skipped_by_the_worker_when_the_web_ran_it(
    queue_name: str, worker: WorkerProcess, proxy: Proxy, tmp_path: Path,
    bgtask_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The web claims the job id and runs the tasks; the job arrives later and is skipped."""
    events = tmp_path / "events.jsonl"
    backend = warmed_up(queue_name, proxy, events, worker)
    proxy.hold_after(b"EVALSHA")  # the job's bytes stay in flight
    elapsed = request(backend, events, "late")
    assert elapsed < 1.5
    assert ran(events, "late") == [os.getpid()]  # run here, once
    (warning,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    match = re.search(r"job (\w+) is not in Redis: claimed it here", warning)
    assert match, warning
    proxy.release()  # the enqueue reaches Redis now: the job is stored after all
    skipped = f"skipping RQ job {match.group(1)}: its hand-off timed out"
    wait_for(lambda: skipped in worker.log(), what="the worker to skip the late job")
    wait_for(lambda: queue_idle(queue_name), what="the queue to be idle")
    assert ran(events, "late") == [os.getpid()]


def test_a_celery_publish_without_an_answer_is_not_run_here_and_reaches_the_broker_once(
    proxy: Proxy, tmp_path: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Over a redis:// broker the publish is stored, its answer lost: an ERROR, no run here."""
    require_service("127.0.0.1", 6379, "Redis", START_REDIS)
    events = tmp_path / "events.jsonl"
    queue = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    app = Celery("bgtask_proxy", broker=f"redis://127.0.0.1:{proxy.port}/9")
    backend = CeleryBackend(app, queue=queue, tasks=DECLARED)
    direct = Redis.from_url(REDIS_URL)
    try:
        proxy.withhold_replies_after(b"LPUSH")
        elapsed = request(backend, events, "celery-lost-answer")
        assert elapsed < 1.0
        assert ran(events, "celery-lost-answer") == []
        (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
        assert "could not tell whether job" in error
        assert "if the job did not arrive they are lost" in error
        assert direct.llen(queue) == 1  # stored once: one worker will run it, once
    finally:
        direct.delete(queue)
        for key in direct.scan_iter(f"*{queue}*"):
            direct.delete(key)
        app.close()
