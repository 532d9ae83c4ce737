"""OpenTelemetry: a span per task, linked to its request's, with the real WSGI instrumentation."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask._job import run_payload
from bgtask._payload import encode
from bgtask.otel import TaskTracing, disable_tracing, enable_tracing

from .helpers.readme import ROOT, block
from .helpers.servers import wait_for
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import flask
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .helpers.readme import ScratchProject

ARGUMENT = "secret@example.com"
TASK_SECONDS = 0.05


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def sends_welcome(to: str) -> None:
    """A task that takes a while and makes a span of its own."""
    with trace.get_tracer("yourapp").start_as_current_span("smtp"):
        time.sleep(TASK_SECONDS)  # the task's own slow work


async def sends_welcome_async(to: str) -> None:
    """An async task."""
    await asyncio.sleep(0)


def fails(to: str) -> None:
    """A task that fails with a message quoting its argument."""
    raise KeyError(to)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    tasks = get_background_tasks()
    tasks.add_task(sends_welcome, ARGUMENT)
    if environ.get("QUERY_STRING") == "fail":
        tasks.add_task(fails, ARGUMENT)
    if environ.get("QUERY_STRING") == "async":
        tasks.add_task(sends_welcome_async, ARGUMENT)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def global_provider(provider: TracerProvider) -> Iterator[TracerProvider]:
    """The tasks' own spans (``trace.get_tracer``) go to the test's provider."""
    original = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = provider
    yield provider
    trace._TRACER_PROVIDER = original


def spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def documented(provider: TracerProvider, **options: Any) -> BackgroundTaskMiddleware:
    """The README's order: OpenTelemetry's middleware inside bgtask's."""
    instrumented = OpenTelemetryMiddleware(app, tracer_provider=provider)
    return BackgroundTaskMiddleware(instrumented, listeners=[TaskTracing(provider)], **options)


def test_a_task_is_a_span_named_after_it_linked_to_the_request_span(
    exporter: InMemorySpanExporter, global_provider: TracerProvider
) -> None:
    """CONSUMER span, a root of its own, linked to the request's span and to the PRODUCER
    span the request recorded as its child; the task's own spans are its children."""
    serve(documented(global_provider), PATH_INFO="/signup")
    found = spans(exporter)
    request = found["GET /signup"]
    task = found["tests.test_otel.sends_welcome"]
    send = found["send tests.test_otel.sends_welcome"]
    assert task.kind is trace.SpanKind.CONSUMER
    assert send.kind is trace.SpanKind.PRODUCER
    assert task.parent is None
    assert send.parent is not None
    assert send.parent.span_id == request.context.span_id
    linked = {
        link.attributes["bgtask.link"]: link.context for link in task.links if link.attributes
    }
    assert linked["request"].span_id == request.context.span_id
    assert linked["send"].span_id == send.context.span_id
    assert task.attributes is not None
    assert task.attributes["messaging.operation.type"] == "process"
    assert task.attributes["messaging.destination.name"] == "inline"
    assert found["smtp"].parent is not None
    assert found["smtp"].parent.span_id == task.context.span_id


def test_with_the_documented_order_the_request_span_ends_before_inline_tasks(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """The request's duration is the response's; the other order stretches it over tasks."""
    serve(documented(provider), PATH_INFO="/signup")
    request, task = (
        spans(exporter)[name] for name in ("GET /signup", "tests.test_otel.sends_welcome")
    )
    assert request.end_time is not None
    assert task.start_time is not None
    assert request.end_time <= task.start_time
    assert (task.end_time or 0) - task.start_time >= TASK_SECONDS * 1e9
    exporter.clear()
    outside = OpenTelemetryMiddleware(BackgroundTaskMiddleware(app), tracer_provider=provider)
    serve(outside, PATH_INFO="/signup")
    stretched = spans(exporter)["GET /signup"]
    assert (stretched.end_time or 0) - (stretched.start_time or 0) >= TASK_SECONDS * 1e9


def test_a_failed_task_span_has_error_status_and_the_exception_without_its_message(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """Status ERROR, an exception event (type, frames); no message, no argument anywhere."""
    serve(documented(provider), QUERY_STRING="fail")
    failed = spans(exporter)["tests.test_otel.fails"]
    assert failed.status.status_code is trace.StatusCode.ERROR
    (event,) = failed.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "builtins.KeyError"
    assert "raise KeyError(to)" in str(event.attributes["exception.stacktrace"])
    assert "exception.message" not in event.attributes
    for span in exporter.get_finished_spans():
        recorded = [span.attributes, *(e.attributes for e in span.events), span.status]
        assert ARGUMENT not in repr(recorded)


def test_the_exception_message_is_recorded_when_asked(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """``record_exception_messages=True``: the message too."""
    tracing = TaskTracing(provider, record_exception_messages=True)
    serve(BackgroundTaskMiddleware(app, listeners=[tracing]), QUERY_STRING="fail")
    (event,) = spans(exporter)["tests.test_otel.fails"].events
    assert event.attributes is not None
    assert event.attributes["exception.message"] == repr(ARGUMENT)


def test_offloaded_sync_and_async_tasks_are_spans_linked_to_the_request(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """On the pool and on the loop: the same spans, in offload mode."""
    pool = OffloadPool(threads=2)
    serve(documented(provider, backend=pool), QUERY_STRING="async", PATH_INFO="/signup")
    assert pool.wait_idle(10)
    found = spans(exporter)
    request = found["GET /signup"]
    for name in ("tests.test_otel.sends_welcome", "tests.test_otel.sends_welcome_async"):
        span = found[name]
        assert span.attributes is not None
        assert span.attributes["messaging.destination.name"] == "offload"
        assert request.context.span_id in {link.context.span_id for link in span.links}
        assert span.end_time is not None


def test_an_engine_job_carries_the_trace_and_the_workers_span_links_back(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """The payload's entries carry ``traceparent``; the worker's run links to the request."""
    captured: dict[str, Any] = {}

    class Capturing:
        """A backend that encodes the batch as RQ and Celery do, then runs it as a worker."""

        def submit(self, tasks: Any) -> None:
            batch = tasks.take()
            captured["payload"] = encode(batch)
            for task in batch.tasks:
                task.release()  # (the web side is done with them)

    enable_tracing(provider)
    try:
        instrumented = OpenTelemetryMiddleware(app, tracer_provider=provider)
        serve(BackgroundTaskMiddleware(instrumented, backend=Capturing()), PATH_INFO="/signup")
        payload = captured["payload"]
        (entry,) = payload["tasks"]
        assert set(entry["trace"]) == {"traceparent"}
        assert run_payload(payload, set()) == []  # what the worker runs
    finally:
        disable_tracing()
    found = spans(exporter)
    request, task = found["GET /signup"], found["tests.test_otel.sends_welcome"]
    assert task.attributes is not None
    assert task.attributes["messaging.destination.name"] == "rq"
    assert [link.context.span_id for link in task.links] == [request.context.span_id]
    assert [link.context.trace_id for link in task.links] == [request.context.trace_id]


def test_a_malformed_trace_in_a_job_is_ignored_and_the_job_runs(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """What the broker says is checked: a huge or odd header is dropped, not followed."""
    payload = {
        "bgtask": 2,
        "declared": False,
        "continue_on_error": False,
        "tasks": [
            {
                "func": "tests.test_otel:sends_welcome_async",
                "args": ["a@b.c"],
                "kwargs": {},
                "trace": {"traceparent": "x" * 100_000},
            }
        ],
    }
    enable_tracing(provider)
    try:
        assert run_payload(payload, set()) == []
    finally:
        disable_tracing()
    (span,) = exporter.get_finished_spans()
    assert span.name == "tests.test_otel.sends_welcome_async"
    assert list(span.links) == []


def test_the_readme_flask_setup_gives_request_durations(
    exporter: InMemorySpanExporter,
    global_provider: TracerProvider,
    readme_project: ScratchProject,
) -> None:
    """The README's Flask lines: the request's span ends before its task's span starts, and
    the task's span links to it."""
    readme_project.write(block("# yourapp/tracing.py"))
    try:
        flask_app: flask.Flask = importlib.import_module("yourapp.tracing").app

        @flask_app.post("/signup")
        def signup() -> str:
            get_background_tasks().add_task(sends_welcome, ARGUMENT)
            return "ok"

        assert flask_app.test_client().post("/signup").text == "ok"
    finally:
        disable_tracing()
    found = spans(exporter)
    request, task = found["POST /signup"], found["tests.test_otel.sends_welcome"]
    assert request.end_time is not None
    assert task.start_time is not None
    assert request.end_time <= task.start_time
    assert request.context.span_id in {link.context.span_id for link in task.links}


@pytest.mark.slow
def test_a_real_rq_workers_span_links_to_the_request_that_queued_it(
    exporter: InMemorySpanExporter, provider: TracerProvider, tmp_path: Path
) -> None:
    """Through Redis and ``rq worker``: the job carries the trace, the worker's span (mode
    ``rq``, exported by the worker) links to the web process's request span."""
    from redis import Redis
    from rq import Queue

    from bgtask.rq import RQBackend

    from .apps.traced_tasks import traced_task
    from .helpers.deployments import REDIS_URL, RQ, rq_queue_name

    spans_file = tmp_path / "spans.jsonl"
    with rq_queue_name() as name:
        backend = RQBackend(Queue(name, connection=Redis.from_url(REDIS_URL)), tasks=[traced_task])

        def view(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
            get_background_tasks().add_task(traced_task, "one")
            start_response("200 OK", [])
            return [b"ok"]

        enable_tracing(provider)
        try:
            instrumented = OpenTelemetryMiddleware(view, tracer_provider=provider)
            serve(BackgroundTaskMiddleware(instrumented, backend=backend), PATH_INFO="/signup")
        finally:
            disable_tracing()
        env = {
            **os.environ,
            "BGTASK_TEST_REDIS_URL": REDIS_URL,
            "BGTASK_TEST_QUEUE": name,
            "BGTASK_TEST_SPANS": str(spans_file),
            "PYTHONPATH": str(ROOT),
        }
        worker = [RQ, "worker", "--burst", "--url", REDIS_URL, "-c", "tests.apps.traced_worker"]
        worker += ["--worker-class", "rq.worker.SimpleWorker", name]
        subprocess.run(worker, env=env, cwd=ROOT, timeout=60, check=True, capture_output=True)
    request = spans(exporter)["GET /signup"]
    exported = [json.loads(line) for line in spans_file.read_text().splitlines()]
    (task,) = [span for span in exported if span["name"] == "tests.apps.traced_tasks.traced_task"]
    assert task["kind"] == "SpanKind.CONSUMER"
    assert task["attributes"]["messaging.destination.name"] == "rq"
    assert [link["context"]["trace_id"] for link in task["links"]] == [
        f"0x{request.context.trace_id:032x}"
    ]
    assert [link["context"]["span_id"] for link in task["links"]] == [
        f"0x{request.context.span_id:016x}"
    ]


def test_without_send_spans_a_task_span_links_to_the_request_only(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    """``send_spans=False``: one span per task, still linked to the request's."""
    instrumented = OpenTelemetryMiddleware(app, tracer_provider=provider)
    tracing = TaskTracing(provider, send_spans=False)
    serve(BackgroundTaskMiddleware(instrumented, listeners=[tracing]), PATH_INFO="/signup")
    found = spans(exporter)
    assert sorted(found) == ["GET /signup", "tests.test_otel.sends_welcome"]
    task = found["tests.test_otel.sends_welcome"]
    assert [link.context.span_id for link in task.links] == [found["GET /signup"].context.span_id]


@pytest.mark.slow
def test_a_real_celery_workers_span_links_to_the_request_that_queued_it(
    exporter: InMemorySpanExporter, provider: TracerProvider, tmp_path: Path
) -> None:
    """Through RabbitMQ and ``celery worker``: the same link, mode ``celery``."""
    import uuid

    from celery import Celery
    from kombu import Connection

    from bgtask.celery import CeleryBackend

    from .apps.traced_tasks import traced_task
    from .helpers.deployments import BROKER_URL, START_RABBITMQ
    from .helpers.engines import WorkerProcess, require_service

    require_service("127.0.0.1", 5672, "RabbitMQ", START_RABBITMQ)
    name = f"bgtask-test-{uuid.uuid4().hex[:12]}"
    spans_file = tmp_path / "spans.jsonl"
    sender = Celery("bgtask_traced", broker=BROKER_URL)
    backend = CeleryBackend(sender, queue=name, tasks=[traced_task])

    def view(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(traced_task, "one")
        start_response("200 OK", [])
        return [b"ok"]

    enable_tracing(provider)
    try:
        instrumented = OpenTelemetryMiddleware(view, tracer_provider=provider)
        serve(BackgroundTaskMiddleware(instrumented, backend=backend), PATH_INFO="/signup")
    finally:
        disable_tracing()
        sender.close()
    command = [
        sys.executable, "-m", "celery", "-A", "tests.apps.traced_celery", "worker",
        "--queues", name, "--pool", "solo", "--without-gossip", "--without-mingle",
        "--hostname", f"{name}@%h", "--loglevel", "INFO",
    ]  # fmt: skip
    env = {"BGTASK_TEST_BROKER_URL": BROKER_URL, "BGTASK_TEST_QUEUE": name}
    env["BGTASK_TEST_SPANS"] = str(spans_file)
    worker = WorkerProcess(command, tmp_path / "worker.log", ready=" ready.", env=env)
    try:
        worker.wait_ready()
        wait_for(lambda: "traced_task" in read(spans_file), what="the worker's task span")
    finally:
        worker.stop()
        with Connection(BROKER_URL, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            connection.default_channel.queue_delete(name)
            connection.default_channel.exchange_delete(name)
    request = spans(exporter)["GET /signup"]
    exported = [json.loads(line) for line in spans_file.read_text().splitlines()]
    (task,) = [span for span in exported if span["name"] == "tests.apps.traced_tasks.traced_task"]
    assert task["attributes"]["messaging.destination.name"] == "celery"
    assert [link["context"]["span_id"] for link in task["links"]] == [
        f"0x{request.context.span_id:016x}"
    ]


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_each_attempt_of_a_retried_task_is_a_span_and_a_time_out_is_an_error(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    import asyncio

    import bgtask
    from bgtask import BackgroundTasks, RetryPolicy

    attempts: list[int] = []

    @bgtask.task(retry=RetryPolicy(max=1))
    def once_down() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError(ARGUMENT)

    @bgtask.task(timeout=0.01)
    async def slow() -> None:
        await asyncio.sleep(30)

    tasks = BackgroundTasks(continue_on_error=True)
    tasks.add_task(once_down)
    tasks.add_task(slow)
    tracing = TaskTracing(provider)
    bgtask.subscribe(tracing)
    try:
        tasks()
    finally:
        bgtask.unsubscribe(tracing)
    finished = exporter.get_finished_spans()
    retried = [span for span in finished if span.name.endswith("once_down")]
    assert [span.status.status_code for span in retried] == [
        trace.StatusCode.ERROR,
        trace.StatusCode.UNSET,
    ]
    (timed_out,) = [span for span in finished if span.name.endswith("slow")]
    assert timed_out.status.status_code is trace.StatusCode.ERROR
    assert ARGUMENT not in repr([span.events for span in finished])
