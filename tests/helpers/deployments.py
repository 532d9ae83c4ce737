"""The RQ and Celery deployments the engine tests run against, in one shape.

Each is Redis or RabbitMQ (skipped, saying how to start it, when absent), a queue of its
own, two worker processes and ``tests.apps.remote_app`` under gunicorn; everything is removed
afterwards. The shared scenarios in ``test_engines.py`` take a :class:`Deployment`.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from celery import Celery
from kombu import Connection
from redis import Redis
from rq import Queue
from rq.job import Job

from bgtask import BackgroundTask, get_background_tasks
from bgtask.celery import TASK_NAME

from ..apps.remote_tasks import read_events
from .engines import WorkerProcess, closed_port, require_service
from .servers import Gunicorn, Server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pytest
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REDIS_URL = "redis://127.0.0.1:6379/9"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
RQ = str(Path(sys.executable).with_name("rq"))
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_RABBITMQ = "rabbitmq-server -detached"


@dataclass
class Deployment:
    """One engine, its workers and the web app that sends them tasks."""

    engine: str
    server: Server
    workers: list[int]
    #: The tags of the tasks of every job that failed for good.
    failed_tags: Callable[[Path], set[str]]
    #: True once nothing is waiting on the engine's queue.
    queue_idle: Callable[[], bool]
    #: How the WARNING names where a collection could not be sent (``/down``).
    unreachable: str
    #: The least time between two attempts of a job under ``/retry``'s policy.
    retry_gap: float
    #: Publishes a payload straight to the broker, as anyone who can write to it could;
    #: returns the job's id.
    publish: Callable[[Any], str]
    #: Everything the workers logged so far.
    worker_logs: Callable[[], str]
    #: How a worker's refusal names a job: ``RQ job`` or ``Celery task``.
    job_kind: str
    #: The file ``tests.apps.import_side_effect`` writes if a worker ever imports it.
    import_marker: Path
    #: What the engine recorded of each job that failed for good (the text its dashboard
    #: shows: RQ's failed job registry, Celery's task failure).
    failure_records: Callable[[Path], list[str]]


class Mailer:
    """A class whose bound method no worker can import."""

    def send(self, to: str) -> None: ...

    @classmethod
    def build(cls, to: str) -> None: ...


def queueing(*tasks: BackgroundTask) -> Any:
    """A WSGI app that queues ``tasks`` as its view's collection."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        collection = get_background_tasks()
        for task in tasks:
            collection.add_task(task.func, *task.args, **task.kwargs)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def unreachable_queue() -> Queue:
    """An RQ queue on a closed port (``from_url``: ``Redis(...)`` retries for ~4 s)."""
    connection = Redis.from_url(f"redis://127.0.0.1:{closed_port()}")
    return Queue("bgtask-unreachable", connection=connection)


def unreachable_app(**config: Any) -> Celery:
    """A Celery app whose broker is a closed port."""
    app = Celery("bgtask_unreachable", broker=f"amqp://guest:guest@127.0.0.1:{closed_port()}//")
    app.conf.update(config)
    return app


@contextlib.contextmanager
def _workers(
    commands: Sequence[Sequence[str]], directory: Path, ready: str, env: dict[str, str]
) -> Iterator[list[WorkerProcess]]:
    """One worker process per command, booted in parallel, stopped together."""
    env = {**env, "BGTASK_TEST_IMPORT_MARKER": str(directory / "imported")}
    processes = [
        WorkerProcess(command, directory / f"worker-{i}.log", ready=ready, env=env)
        for i, command in enumerate(commands)
    ]
    try:
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.terminate()  # all at once: they shut down in parallel
        for process in processes:
            process.stop()


def _server(directory: Path, env: dict[str, str]) -> Gunicorn:
    return Gunicorn("tests.apps.remote_app:build()", directory / "server.log", threads=8, env=env)


def delete_rq_queue(name: str) -> None:
    """Every job the run left and every key of the queue."""
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


@contextlib.contextmanager
def rq_queue_name() -> Iterator[str]:
    """A fresh RQ queue name (Redis required), deleted afterwards."""
    require_service("127.0.0.1", 6379, "Redis", START_REDIS)
    name = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        delete_rq_queue(name)


@contextlib.contextmanager
def rq_deployment(tmp: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two long-running ``rq worker`` processes (SimpleWorker: no fork per job), started
    with ``-c tests.apps.rq_worker_settings``: they know the declared tasks."""
    with rq_queue_name() as name:
        command = [
            RQ, "worker",
            "--url", REDIS_URL,
            "-c", "tests.apps.rq_worker_settings",
            "--worker-class", "rq.worker.SimpleWorker",
            "--with-scheduler",  # RetryPolicy backoff: RQ schedules the retries
        ]  # fmt: skip
        env = {
            "BGTASK_TEST_ENGINE": "rq",
            "BGTASK_TEST_REDIS_URL": REDIS_URL,
            "BGTASK_TEST_QUEUE": name,
            "BGTASK_TEST_DOWN_URL": f"redis://127.0.0.1:{closed_port()}/0",
        }
        queue = Queue(name, connection=Redis.from_url(REDIS_URL))

        def failed_tags(events: Path) -> set[str]:
            tags: set[str] = set()
            for job_id in queue.failed_job_registry.get_job_ids():
                payload = Job.fetch(job_id, connection=queue.connection).args[0]
                entries = payload.get("tasks") if isinstance(payload, dict) else None
                for task in entries if isinstance(entries, list) else ():
                    if isinstance(task, dict) and len(task.get("args", ())) > 1:
                        tags.add(task["args"][1])  # crafted jobs carry other shapes
            return tags

        def publish(payload: Any) -> str:
            return str(queue.enqueue_call("bgtask.rq.run_job", args=(payload,)).id)

        def failure_records(events: Path) -> list[str]:
            """The failure records of the failed jobs whose tasks write to ``events``
            (the deployment is shared: other tests' jobs fail in the same registry)."""
            records = []
            for job_id in queue.failed_job_registry.get_job_ids():
                job = Job.fetch(job_id, connection=queue.connection)
                if str(events) not in repr(job.args):
                    continue
                result = job.latest_result()
                records.append((result.exc_string if result is not None else None) or "")
            return records

        commands = [[*command, "--name", f"{name}-{i}", name] for i in range(2)]
        worker_env = {"BGTASK_TEST_REDIS_URL": REDIS_URL, "BGTASK_TEST_QUEUE": name}
        directory = tmp.mktemp("rq-workers")
        with (
            _workers(commands, directory, "Listening on", worker_env) as workers,
            _server(tmp.mktemp("rq-server"), env) as server,
        ):
            yield Deployment(
                engine="rq",
                server=server,
                workers=[worker.pid for worker in workers],
                failed_tags=failed_tags,
                queue_idle=lambda: queue.count == 0 and queue.started_job_registry.count == 0,
                unreachable="on RQ queue 'bgtask-unreachable' (ConnectionError",
                # RQ schedules in whole seconds: a 2 s backoff is at least 1 s.
                retry_gap=1.0,
                publish=publish,
                worker_logs=lambda: "".join(worker.log() for worker in workers),
                job_kind="RQ job",
                import_marker=directory / "imported",
                failure_records=failure_records,
            )


@contextlib.contextmanager
def celery_deployment(tmp: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two ``celery -A tests.apps.celery_app worker`` processes, each a pool of four threads."""
    require_service("127.0.0.1", 5672, "RabbitMQ", START_RABBITMQ)
    name = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    command = [
        sys.executable, "-m", "celery", "-A", "tests.apps.celery_app", "worker",
        "--queues", name,
        "--pool", "threads", "--concurrency", "4",
        # Without heartbeats a warm shutdown waits 10 s for the worker's event loop.
        "--without-gossip", "--without-mingle",
        "--loglevel", "INFO",
    ]  # fmt: skip
    env = {
        "BGTASK_TEST_ENGINE": "celery",
        "BGTASK_TEST_BROKER_URL": BROKER_URL,
        "BGTASK_TEST_QUEUE": name,
        "BGTASK_TEST_DOWN_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}//",
    }

    def failed_tags(events: Path) -> set[str]:
        # tests.apps.celery_app records each job that failed for good.
        return {tag for e in read_events(events) if e["event"] == "job_failed" for tag in e["tags"]}

    def queue_idle() -> bool:
        with Connection(BROKER_URL, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            declared = connection.default_channel.queue_declare(name, passive=True)
        return int(declared.message_count) == 0

    def publish(payload: Any) -> str:
        # A Celery app of its own, with no bgtask backend: any broker writer can do this.
        sender = Celery("crafted", broker=BROKER_URL)
        try:
            return str(sender.send_task(TASK_NAME, args=[payload], queue=name).id)
        finally:
            sender.close()

    commands = [[*command, "--hostname", f"{name}-{i}@%h"] for i in range(2)]
    worker_env = {"BGTASK_TEST_BROKER_URL": BROKER_URL, "BGTASK_TEST_QUEUE": name}
    directory = tmp.mktemp("celery-workers")
    try:
        with (
            _workers(commands, directory, " ready.", worker_env) as workers,
            _server(tmp.mktemp("celery-server"), env) as server,
        ):
            yield Deployment(
                engine="celery",
                server=server,
                workers=[worker.pid for worker in workers],
                failed_tags=failed_tags,
                queue_idle=queue_idle,
                unreachable="on Celery app 'bgtask_unreachable'",
                retry_gap=0.5,
                publish=publish,
                worker_logs=lambda: "".join(worker.log() for worker in workers),
                job_kind="Celery task",
                import_marker=directory / "imported",
                failure_records=lambda events: [
                    e["record"] for e in read_events(events) if e["event"] == "job_failed"
                ],
            )
    finally:
        with Connection(BROKER_URL, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            channel = connection.default_channel
            channel.queue_delete(name)
            channel.exchange_delete(name)


#: Sets one engine up and takes it down again.
Deploy: TypeAlias = (
    "Callable[[pytest.TempPathFactory], contextlib.AbstractContextManager[Deployment]]"
)
DEPLOYMENTS: dict[str, Deploy] = {
    "rq": rq_deployment,
    "celery": celery_deployment,
}
