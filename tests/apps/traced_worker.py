"""An RQ worker's settings module with tracing: ``rq worker -c tests.apps.traced_worker``.

The worker's spans are written as JSON lines to ``$BGTASK_TEST_SPANS``, through the SDK, as
an application's worker would export them to its collector.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from redis import Redis
from rq import Queue

from bgtask.otel import enable_tracing
from bgtask.rq import RQBackend

from .traced_tasks import traced_task

REDIS_URL = os.environ.get("BGTASK_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUE = os.environ.get("BGTASK_TEST_QUEUE", "bgtask-tests")


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def export_spans_to(path: str) -> None:
    """Trace this worker's tasks, each span a JSON line appended to ``path``."""
    spans = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the worker's life)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=spans, formatter=_one_line))
    )
    trace.set_tracer_provider(provider)
    enable_tracing()


if "BGTASK_TEST_SPANS" in os.environ:  # in the worker (not when pytest collects doctests)
    export_spans_to(os.environ["BGTASK_TEST_SPANS"])
backend = RQBackend(Queue(QUEUE, connection=Redis.from_url(REDIS_URL)), tasks=[traced_task])
