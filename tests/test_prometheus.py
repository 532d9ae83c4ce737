"""Prometheus metrics: counters by task and event, histograms, the pool's gauges."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask.prometheus import TaskMetrics, disable_metrics, enable_metrics, metrics_app
from bgtask.rq import RQBackend

from .helpers.deployments import unreachable_queue
from .helpers.servers import Gunicorn, Server, lines, wait_for
from .helpers.serving import get
from .helpers.wsgi import Call, serve

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from bgtask import TaskEvent

TASK = "tests.test_prometheus.sends_welcome"
FAILS = "tests.test_prometheus.fails"


def sends_welcome(to: str) -> None:
    """A task."""


def fails(to: str) -> None:
    """A task that fails."""
    msg = "smtp down"
    raise RuntimeError(msg)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    tasks = get_background_tasks()
    tasks.add_task(sends_welcome, "a@b.c")
    if environ.get("QUERY_STRING") == "fail":
        tasks.add_task(fails, "a@b.c")
        tasks.add_task(sends_welcome, "never@b.c")
    start_response("200 OK", [])
    return [b"ok"]


def value(registry: prometheus_client.CollectorRegistry, name: str, task: str) -> float:
    return registry.get_sample_value(name, {"task": task}) or 0.0


def test_each_event_is_counted_by_task_in_celery_exporter_style_names() -> None:
    """``bgtask_tasks_<event>_total{task=...}``, one series per function."""
    registry = prometheus_client.CollectorRegistry()
    wrapped = BackgroundTaskMiddleware(app, listeners=[TaskMetrics(registry)])
    serve(wrapped)
    serve(wrapped, QUERY_STRING="fail")
    assert value(registry, "bgtask_tasks_queued_total", TASK) == 3
    assert value(registry, "bgtask_tasks_started_total", TASK) == 2
    assert value(registry, "bgtask_tasks_succeeded_total", TASK) == 2
    assert value(registry, "bgtask_tasks_skipped_total", TASK) == 1
    assert value(registry, "bgtask_tasks_failed_total", FAILS) == 1
    assert value(registry, "bgtask_tasks_failed_total", TASK) == 0
    assert value(registry, "bgtask_task_duration_seconds_count", TASK) == 2
    assert value(registry, "bgtask_task_duration_seconds_count", FAILS) == 1
    assert value(registry, "bgtask_task_wait_seconds_count", TASK) == 2
    assert value(registry, "bgtask_task_wait_seconds_sum", TASK) >= 0


def test_discarded_handed_off_and_fallback_are_counted() -> None:
    """A view that raises discards; an unreachable RQ hands off nothing and falls back."""
    registry = prometheus_client.CollectorRegistry()
    metrics = TaskMetrics(registry)

    def raising(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(sends_welcome, "a@b.c")
        msg = "the view failed"
        raise ValueError(msg)

    with pytest.raises(ValueError, match="the view failed"):
        serve(BackgroundTaskMiddleware(raising, listeners=[metrics]))
    assert value(registry, "bgtask_tasks_discarded_total", TASK) == 1
    backend = RQBackend(unreachable_queue(), tasks=[sends_welcome], handoff_timeout=2)
    serve(BackgroundTaskMiddleware(app, backend=backend, listeners=[metrics]))
    assert value(registry, "bgtask_tasks_fallback_total", TASK) == 1
    assert value(registry, "bgtask_tasks_succeeded_total", TASK) == 1
    pool = OffloadPool(threads=1)
    serve(BackgroundTaskMiddleware(app, backend=pool, listeners=[metrics]))
    assert pool.wait_idle(10)
    assert value(registry, "bgtask_tasks_handed_off_total", TASK) == 1


def test_the_gauges_show_the_offload_queue_and_busy_threads() -> None:
    """One collection holds the only thread, a second waits for it: 1 busy, 1 waiting."""
    registry = prometheus_client.CollectorRegistry()
    metrics = TaskMetrics(registry)
    release = threading.Event()
    started = threading.Event()

    def holds(to: str) -> None:
        started.set()
        assert release.wait(10)

    def holding(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(holds, "a@b.c")
        start_response("200 OK", [])
        return [b"ok"]

    pool = OffloadPool(threads=1)
    serve(BackgroundTaskMiddleware(holding, backend=pool, listeners=[metrics]))
    assert started.wait(10)
    serve(BackgroundTaskMiddleware(holding, backend=pool, listeners=[metrics]))
    assert registry.get_sample_value("bgtask_offload_busy_threads") == 1
    assert registry.get_sample_value("bgtask_offload_queue_depth") == 1
    release.set()
    assert pool.wait_idle(10)
    assert registry.get_sample_value("bgtask_offload_queue_depth") == 0


def test_enable_metrics_counts_every_app_of_the_process_once_until_disabled() -> None:
    """Process-wide, one set of metrics per registry; disabling stops the counting."""
    registry = prometheus_client.CollectorRegistry()
    assert enable_metrics(registry) is enable_metrics(registry)
    serve(BackgroundTaskMiddleware(app))
    disable_metrics(registry)
    serve(BackgroundTaskMiddleware(app))
    assert value(registry, "bgtask_tasks_succeeded_total", TASK) == 1


def test_the_metrics_app_answers_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR: this process's default registry, as text."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = enable_metrics()
    try:
        serve(BackgroundTaskMiddleware(app))
        call = Call(metrics_app(), PATH_INFO="/metrics")
        body = call.body().decode()
    finally:
        disable_metrics()
    assert call.status == "200 OK"
    assert f'bgtask_tasks_succeeded_total{{task="{TASK}"}}' in body
    assert isinstance(metrics, TaskMetrics)


def test_a_metric_listener_never_sees_argument_values() -> None:
    """Labels are task names only."""
    registry = prometheus_client.CollectorRegistry()
    heard: list[TaskEvent] = []
    serve(BackgroundTaskMiddleware(app, listeners=[TaskMetrics(registry), heard.append]))
    text = prometheus_client.generate_latest(registry).decode()
    assert "a@b.c" not in text
    assert heard


def scraped(server: Server, name: str) -> float:
    """The sum of ``name``'s samples in one scrape of the server's /metrics."""
    body = get(server, "/metrics")[1].decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    )


@pytest.mark.slow
def test_under_gunicorn_with_two_workers_the_scraped_totals_are_the_tasks_run(
    tmp_path: Path,
) -> None:
    """Multiprocess mode: any worker's scrape sums every worker's counts, restarted workers
    included; ``child_exit`` drops a dead worker's gauges."""
    events, directory = tmp_path / "events.jsonl", tmp_path / "prometheus"
    directory.mkdir()
    total = 40
    args = ["--config", "tests/apps/gunicorn_metrics_conf.py", "--max-requests", "15"]
    env = {"BGTASK_TEST_EVENTS": str(events), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with Gunicorn(
        "tests.apps.metrics_app:app", tmp_path / "server.log", workers=2, args=args, env=env
    ) as server:
        with ThreadPoolExecutor(4) as clients:
            statuses = list(clients.map(lambda n: get(server, f"/?{n}")[0].status, range(total)))
        assert statuses == [200] * total
        wait_for(lambda: len(list(lines(events))) == total, what=f"{total} tasks to run")
        pids = {json.loads(line)["pid"] for line in lines(events)}
        assert len(pids) >= 2  # both workers (and the ones that replaced them) ran tasks
        task = 'task="tests.apps.metrics_app.counted_task"'
        # A task's line is written before its end is counted: wait for the last count.
        succeeded = "bgtask_tasks_succeeded_total"
        wait_for(lambda: scraped(server, succeeded) == total, what=f"{succeeded} == {total}")
        for kind in ("queued", "started", "handed_off"):
            assert scraped(server, f"bgtask_tasks_{kind}_total") == total, kind
        assert scraped(server, "bgtask_tasks_failed_total") == 0
        assert scraped(server, "bgtask_task_duration_seconds_count") == total
        body = get(server, "/metrics")[1].decode()
        assert f"bgtask_tasks_succeeded_total{{{task}}} {total}.0" in body
        assert "bgtask_offload_busy_threads" in body

        def dead_workers_gauges_gone() -> bool:
            dead = [pid for pid in pids if not alive(pid)]
            files = {path.name for path in directory.iterdir()}
            return bool(dead) and not any(f"gauge_livesum_{pid}.db" in files for pid in dead)

        wait_for(dead_workers_gauges_gone, what="a restarted worker's gauges to be dropped")
        assert "Error" not in server.log()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_routes_fixed_task_is_queued_once_per_request() -> None:
    """``@background``'s template collection and the per-request copy are one queueing."""
    from bgtask import BackgroundTask, background

    registry = prometheus_client.CollectorRegistry()
    metrics = TaskMetrics(registry)

    @background(BackgroundTask(sends_welcome, "a@b.c"))
    def fixed(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = BackgroundTaskMiddleware(fixed, listeners=[metrics])
    serve(wrapped)
    serve(wrapped)
    assert value(registry, "bgtask_tasks_queued_total", TASK) == 2
    assert value(registry, "bgtask_tasks_succeeded_total", TASK) == 2


def test_a_task_cut_while_running_is_counted_cut_and_its_span_is_an_error() -> None:
    """A deadline while it runs: ``bgtask_tasks_cut_total``, and the task's span ends with
    status ERROR, from the thread that cut it."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bgtask.otel import TaskTracing

    registry = prometheus_client.CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    release, started = threading.Event(), threading.Event()

    def holds(to: str) -> None:
        started.set()
        release.wait(10)

    def holding(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(holds, "a@b.c")
        start_response("200 OK", [])
        return [b"ok"]

    pool = OffloadPool(threads=1)
    listeners: list[Callable[[TaskEvent], object]] = [TaskMetrics(registry), TaskTracing(provider)]
    serve(BackgroundTaskMiddleware(holding, backend=pool, listeners=listeners))
    assert started.wait(10)
    pool.cut("the test's deadline")
    release.set()
    assert pool.wait_idle(10)
    name = f"{holds.__module__}.{holds.__qualname__}"
    assert value(registry, "bgtask_tasks_cut_total", name) == 1
    assert value(registry, "bgtask_tasks_succeeded_total", name) == 0
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.status.description == "cut: the test's deadline while it ran"


def test_task_controls_events_are_counted() -> None:
    """A retry, a time-out and an overdue sync task each have their counter."""
    import asyncio

    import bgtask
    from bgtask import BackgroundTasks, RetryPolicy

    registry = prometheus_client.CollectorRegistry()
    metrics = TaskMetrics(registry)
    attempts: list[int] = []

    @bgtask.task(retry=RetryPolicy(max=1))
    def once_down() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            msg = "smtp down"
            raise ConnectionError(msg)

    released = threading.Event()

    @bgtask.task(timeout=0.01)
    async def slow() -> None:
        await asyncio.sleep(30)

    @bgtask.task(timeout=0.01)
    def overdue() -> None:
        released.wait(10)

    def release_when_overdue(event: TaskEvent) -> None:
        if event.kind == "overdue":
            released.set()

    bgtask.subscribe(metrics)
    bgtask.subscribe(release_when_overdue)
    try:
        tasks = BackgroundTasks(continue_on_error=True)
        tasks.add_task(once_down)
        tasks.add_task(slow)
        tasks.add_task(overdue)
        tasks()
    finally:
        bgtask.unsubscribe(release_when_overdue)
        bgtask.unsubscribe(metrics)
    name = "tests.test_prometheus.test_task_controls_events_are_counted.<locals>"
    assert value(registry, "bgtask_tasks_retrying_total", f"{name}.once_down") == 1
    assert value(registry, "bgtask_tasks_timed_out_total", f"{name}.slow") == 1
    assert value(registry, "bgtask_task_duration_seconds_count", f"{name}.slow") == 1
    assert value(registry, "bgtask_tasks_overdue_total", f"{name}.overdue") == 1
    assert value(registry, "bgtask_tasks_succeeded_total", f"{name}.overdue") == 1
