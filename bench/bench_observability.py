"""What seeing every task costs: Prometheus metrics and OpenTelemetry spans, per task.

1. In-process WSGI calls, one sync no-op task per request, contenders interleaved: the
   middleware with no listener, then with ``TaskMetrics``, ``TaskTracing`` (the SDK, a
   batch processor, an exporter that drops) and both. Every contender runs under
   OpenTelemetry's WSGI middleware, so the request span is there for all (it is the
   application's cost, not bgtask's); the row without it is the reference of today.
2. End to end: gunicorn gthread, 2 workers x 8 threads, 32 keep-alive clients, a 20 ms task
   offloaded per request to a pool sized as ``bench_server_saturation`` sizes it, the same
   app with and without bgtask's metrics (multiprocess mode) and spans.

Targets: the per-task cost is reported; end to end >= 0.97 of the throughput without them.
The workers' CPU per request is printed too: on a shared machine it moves less with the
neighbours' load than the throughput does.
Run with ``python -m bench.bench_observability``.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import prometheus_client
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from bench import _server
from bench._common import header, interleave, median, paired_ratio, print_table, scaled, us
from bench._common import verdict as _verdict
from bench._observed_app import Dropping
from bench._wsgi import HEADERS, timed_requests
from bgtask import BackgroundTaskMiddleware, get_background_tasks
from bgtask.otel import TaskTracing
from bgtask.prometheus import TaskMetrics
from tests.helpers.servers import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIEnvironment

RUNS = [0]
TASK_MS = 20
CONNECTIONS = 32
SECONDS = 2
TARGET = 0.97


def noop() -> None:
    RUNS[0] += 1


def queuing(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    get_background_tasks().add_task(noop)
    start_response("200 OK", HEADERS)
    return [b"ok"]


def in_process() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    registry = prometheus_client.CollectorRegistry()
    metrics, tracing = TaskMetrics(registry), TaskTracing(provider)
    traced = OpenTelemetryMiddleware(queuing, tracer_provider=provider)
    contenders = {
        "no listener, no request span": timed_requests(BackgroundTaskMiddleware(queuing)),
        "no listener": timed_requests(BackgroundTaskMiddleware(traced)),
        "Prometheus": timed_requests(BackgroundTaskMiddleware(traced, listeners=[metrics])),
        "OpenTelemetry": timed_requests(BackgroundTaskMiddleware(traced, listeners=[tracing])),
        "both": timed_requests(BackgroundTaskMiddleware(traced, listeners=[metrics, tracing])),
    }
    ops, rounds = scaled(3_000, 1_000), scaled(15, 5)
    times = interleave(contenders, ops=ops, rounds=rounds)
    assert RUNS[0] == ops * (rounds + 1) * len(contenders), "every task ran"
    base = times["no listener"]
    rows = []
    for name, values in times.items():
        added = median([t - b for t, b in zip(values, base, strict=True)])
        reference = name in ("no listener", "no listener, no request span")
        rows.append(
            [
                name,
                us(median(values)),
                "" if reference else f"{paired_ratio(values, base):.2f}",
                "" if reference else us(added),
            ]
        )
    print_table(["contender", "per request", "x no listener", "added per task"], rows)
    print(f"\n{rounds} interleaved rounds of {ops} requests; medians. Every task ran.\n")


def end_to_end() -> None:
    with _server.scratch_directory() as scratch:
        directory = Path(scratch)
        (directory / "calibration").mkdir()
        from bench.bench_server_saturation import calibrate, pool_size

        threads = pool_size(calibrate(directory))
        stats, metrics = directory / "stats", directory / "prometheus"
        stats.mkdir()
        metrics.mkdir()
        port = _server.free_port()
        command = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{port}", "--reuse-port",
            "--worker-class", "gthread", "--workers", str(_server.WORKERS),
            "--threads", str(_server.THREADS), "--no-control-socket", "--error-logfile", "-",
            "bench._observed_app:app",
        ]  # fmt: skip
        env = {
            "BGTASK_BENCH_STATS": str(stats),
            "BGTASK_BENCH_POOL_THREADS": str(threads),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        log = directory / "gunicorn.log"
        server = _server.Process(command, log, port, env, "Booting worker")
        stack = _server.Stack(server, stats, "gunicorn gthread")
        try:
            wait_for(stack.answers, what="gunicorn to answer")
            stack.warm_every_worker("/wsgi", _server.WORKERS)
            query = f"?ms={TASK_MS}"
            listed = [
                _server.Contender("without", stack, f"/plain{query}", "without"),
                _server.Contender("with metrics and spans", stack, f"/observed{query}", "without"),
                _server.Contender("with metrics", stack, f"/metrics{query}", "without"),
                _server.Contender("with spans", stack, f"/spans{query}", "without"),
            ]
            for contender in listed:
                stack.warm(contender.path)
            runs, retried = _server.interleaved_loads(
                listed,
                rounds=scaled(3, 1),
                connections=CONNECTIONS,
                seconds=SECONDS,
                keep_alive=True,
            )
        finally:
            server.stop()
    ratio = _server.paired(runs, "with metrics and spans", "without", "throughput")
    rows = [
        [
            label,
            f"{statistics.median(run.throughput for run in mine):.0f}",
            f"{_server.paired(runs, label, 'without', 'throughput'):.3f}",
            f"{statistics.median(run.cpu_per_request for run in mine) * 1e6:.0f}",
            f"{_server.paired(runs, label, 'without', 'cpu_per_request'):.3f}",
            f"{statistics.median(run.tasks_per_second for run in mine):.0f}",
            sum(run.errors for run in mine),
        ]
        for label, mine in runs.items()
    ]
    print_table(
        [
            "contender",
            "req/s",
            "x without",
            "server CPU µs/request",
            "x without",
            "tasks/s",
            "errors",
        ],
        rows,
    )
    print(
        f"\nthroughput with / without: {ratio:.3f} (target >= {TARGET}: "
        f"{_verdict(ratio >= TARGET)}); pool {threads} threads per worker; load: "
        f"{_server.load_generator()}; {retried} skewed run(s) run again.\n"
    )


def main() -> None:
    header("8. Seeing every task: the cost of Prometheus metrics and OpenTelemetry spans")
    print("### in-process, one sync no-op task per request\n")
    in_process()
    if os.environ.get("BGTASK_BENCH_SKIP_SERVERS"):
        return
    print(f"### end to end: gunicorn, {CONNECTIONS} clients, {TASK_MS} ms offloaded tasks\n")
    end_to_end()


if __name__ == "__main__":
    main()
