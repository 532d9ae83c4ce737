"""The apps of ``bench_observability``'s end-to-end part, served by one gunicorn.

``/plain`` and ``/observed`` are the same Flask view queuing ``sync_task`` (``?ms=20``) on an
``OffloadPool`` of ``$BGTASK_BENCH_POOL_THREADS`` threads, both under OpenTelemetry's WSGI
middleware (the request spans are the application's either way); ``/observed`` adds
bgtask's Prometheus metrics (multiprocess mode, ``$PROMETHEUS_MULTIPROC_DIR``) and task
spans, exported by a batch processor to an exporter that drops them; ``/metrics`` and
``/spans`` add one of them. ``/wsgi`` answers the
harness's warm-up. Each worker counts requests and tasks as ``bench._server_app`` does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import flask
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench._server_app import QUEUED, REQUESTS, counters, sync_task
from bgtask import OffloadPool, get_background_tasks
from bgtask.flask import BgTask
from bgtask.otel import TaskTracing
from bgtask.prometheus import TaskMetrics

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from opentelemetry.sdk.trace import ReadableSpan


class Dropping(SpanExporter):
    """An exporter that sends nothing: the cost measured is bgtask's, not a network's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(Dropping()))


def _view() -> flask.Response:
    counters.add(REQUESTS)
    counters.add(QUEUED)
    get_background_tasks().add_task(sync_task, float(flask.request.args.get("ms", "0")))
    return flask.make_response("ok")


def _app(name: str, **bgtask: Any) -> WSGIApplication:
    app = flask.Flask(name)
    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app, tracer_provider=provider)  # type: ignore[method-assign]
    threads = int(os.environ.get("BGTASK_BENCH_POOL_THREADS", "8"))
    BgTask(app, offload=OffloadPool(threads=threads), **bgtask)
    app.add_url_rule(f"/{name}", view_func=_view)
    return app


def _wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    counters.add(REQUESTS)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


_metrics, _tracing = TaskMetrics(), TaskTracing(provider)
APPS: dict[str, WSGIApplication] = {
    "plain": _app("plain"),
    "observed": _app("observed", listeners=[_metrics, _tracing]),
    "metrics": _app("metrics", listeners=[_metrics]),
    "spans": _app("spans", listeners=[_tracing]),
    "wsgi": _wsgi,
}


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on the first path segment."""
    target = APPS.get(environ["PATH_INFO"].split("/", 2)[1])
    if target is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    return target(environ, start_response)
