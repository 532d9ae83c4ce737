"""OpenTelemetry traces of every task. Install with ``pip install 'wsgi-bgtask[otel]'``::

    from bgtask.otel import enable_tracing

    enable_tracing()        # once, at import of your app, with your SDK's tracer provider set

Each task that runs is a span named after its function (kind CONSUMER, messaging
``process``), a root of its own trace since it outlives the request, with span links to the
request's span and to a short PRODUCER span (``send NAME``, messaging ``send``) that the
request records, as a child of its span, when it queues the task. For RQ and Celery the
trace headers travel in the job (``traceparent``), and the worker's span links back to the
request. A failed task's span has status ERROR and an ``exception`` event with the type and
the frames; the message only with ``record_exception_messages=True`` (messages may quote
argument values: ``KeyError('user@example.com')``). Arguments are never recorded.
"""

from __future__ import annotations

import contextvars
import traceback
from typing import TYPE_CHECKING, Any, Final

from ._extras import missing

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError as error:  # a clear message naming the extra
    raise missing("bgtask.otel", "opentelemetry", "otel") from error

from ._carrier import install_injector, queued_with
from ._events import subscribe, unsubscribe

if TYPE_CHECKING:
    from ._events import TaskEvent

__all__ = ["TaskTracing", "disable_tracing", "enable_tracing"]

#: In a queued task's context: the producer span the request recorded for it.
_sent_from: Final[contextvars.ContextVar[trace.SpanContext | None]] = contextvars.ContextVar(
    "bgtask_sent_from", default=None
)
_ROOT: Final = otel_context.Context()  # a task's span has no parent: it is linked instead


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1e9)


class TaskTracing:
    """The spans, as a listener of the task events (:func:`enable_tracing` subscribes one).

    >>> from opentelemetry.trace import NoOpTracerProvider
    >>> tracing = TaskTracing(NoOpTracerProvider())
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        record_exception_messages: bool = False,
        send_spans: bool = True,
    ) -> None:
        self.tracer = trace.get_tracer("bgtask", tracer_provider=tracer_provider)
        self.record_exception_messages = record_exception_messages
        #: Whether the request records a PRODUCER span per task it queues (one span less
        #: per task without: the task's span then links to the request's only).
        self.send_spans = send_spans
        #: The spans of tasks running now, by task id (a deadline ends them from any thread).
        self._running: dict[int, trace.Span] = {}

    def __call__(self, event: TaskEvent) -> None:
        kind = event.kind
        if kind == "queued":
            # A request's queueing only (see TaskMetrics: a route's fixed tasks are also
            # queued into the collection they are copied from).
            if self.send_spans and event.environ is not None:
                self._send(event)
        elif kind == "started":
            self._process(event)
        elif kind in ("succeeded", "failed", "timed_out", "retrying", "cut"):
            # One span per attempt: a retry's next attempt starts a span of its own.
            span = self._running.pop(event.task.id, None)
            if span is not None:
                self._end(span, event)

    def _send(self, event: TaskEvent) -> None:
        # In the request, in its context: the request's span is the parent.
        if not trace.get_current_span().get_span_context().is_valid:
            return
        task = event.task
        at = _ns(event.queued_at)
        span = self.tracer.start_span(
            f"send {event.name}",
            kind=trace.SpanKind.PRODUCER,
            start_time=at,
            attributes={
                "messaging.system": "bgtask",
                "messaging.operation.type": "send",
                "messaging.message.id": str(task.id),
            },
        )
        span.end(end_time=at)
        task.context.run(_sent_from.set, span.get_span_context())

    def _process(self, event: TaskEvent) -> None:
        # In the task's own context (a copy of the request's, or a job's on a worker).
        links = []
        sent_from = _sent_from.get()
        if sent_from is not None:
            links.append(trace.Link(sent_from, {"bgtask.link": "send"}))
        request = trace.get_current_span().get_span_context()
        carrier = queued_with.get()
        if carrier is not None:
            request = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if request.is_valid:
            links.append(trace.Link(request, {"bgtask.link": "request"}))
        # Few attributes: the SDK checks each one, and this is paid per task.
        attributes: dict[str, Any] = {
            "messaging.system": "bgtask",
            "messaging.operation.type": "process",
            "messaging.destination.name": event.mode,
        }
        if carrier is None:
            attributes["messaging.message.id"] = str(event.task.id)
        if event.wait is not None:
            attributes["bgtask.wait_seconds"] = event.wait
        span = self.tracer.start_span(
            event.name,
            context=_ROOT,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
            start_time=_ns(event.started_at),
        )
        self._running[event.task.id] = span
        # The task's own spans (a database call) are children of it: this context is the
        # one the task runs in, and is dropped after it (nothing to detach).
        otel_context.attach(trace.set_span_in_context(span))

    def _end(self, span: trace.Span, event: TaskEvent) -> None:
        error = event.error
        if error is not None:
            name = type(error).__qualname__
            attributes = {
                "exception.type": f"{type(error).__module__}.{name}",
                "exception.stacktrace": "".join(traceback.format_tb(error.__traceback__)),
            }
            if self.record_exception_messages:
                attributes["exception.message"] = str(error)
            span.add_event("exception", attributes)
            span.set_status(trace.StatusCode.ERROR, name)
        elif event.kind == "cut":
            span.set_status(trace.StatusCode.ERROR, f"cut: {event.reason}")
        span.end(end_time=_ns(event.ended_at))


def _inject() -> dict[str, str]:
    # In the task's context: the request's span, which the worker's span links to.
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


_enabled: list[TaskTracing] = []


def enable_tracing(
    tracer_provider: Any = None, *, record_exception_messages: bool = False, send_spans: bool = True
) -> TaskTracing:
    """Trace every task of this process (the global tracer provider unless one is given),
    and carry trace headers in RQ and Celery jobs; a second call returns the same (its
    options are those of the first).

    >>> tracing = enable_tracing()
    >>> enable_tracing() is tracing
    True
    >>> disable_tracing()
    """
    if not _enabled:
        tracing = TaskTracing(
            tracer_provider,
            record_exception_messages=record_exception_messages,
            send_spans=send_spans,
        )
        _enabled.append(subscribe(tracing))
        install_injector(_inject)
    return _enabled[0]


def disable_tracing() -> None:
    """Stop tracing tasks and carrying trace headers."""
    if _enabled:
        unsubscribe(_enabled.pop())
        install_injector(None)
