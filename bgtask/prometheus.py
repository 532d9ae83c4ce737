"""Prometheus metrics of every task. Install with ``pip install 'wsgi-bgtask[prometheus]'``::

    from bgtask.prometheus import enable_metrics

    enable_metrics()        # once, at import of your app: every task of the process

=========================================  =========  ====================================
metric                                     type       what
=========================================  =========  ====================================
``bgtask_tasks_queued_total{task}``        counter    tasks queued (and so on for
                                                      ``started``, ``succeeded``,
                                                      ``failed``, ``skipped``,
                                                      ``discarded``, ``cut``,
                                                      ``handed_off``)
``bgtask_tasks_fallback_total{task}``      counter    tasks run in this process because
                                                      the engine could not be reached
``bgtask_task_duration_seconds{task}``     histogram  start to end of a task that ran
``bgtask_task_wait_seconds{task}``         histogram  the response sent to the task's start
``bgtask_offload_queue_depth``             gauge      collections waiting for a pool thread
``bgtask_offload_busy_threads``            gauge      pool threads running a collection
=========================================  =========  ====================================

``queued`` counts the tasks a request queued (not the templates of ``@background``, nor the
tasks a worker rebuilds from a job). ``task`` is the function's qualified name: one series
per task function (and kind), never per argument or request. Under gunicorn, set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, before the server starts), serve
:func:`metrics_app`, and add :func:`child_exit` to ``gunicorn.conf.py``: the gauges are
summed over live workers, each sampled once a second (in one process, they are read at
each scrape).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from ._extras import missing

try:
    import prometheus_client
except ImportError as error:  # a clear message naming the extra
    raise missing("bgtask.prometheus", "prometheus_client", "prometheus") from error

from prometheus_client import multiprocess

from ._events import subscribe, unsubscribe
from ._native import allocate_lock, start_thread
from ._offload import offload_stats

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ._events import Kind, TaskEvent

__all__ = ["TaskMetrics", "child_exit", "disable_metrics", "enable_metrics", "metrics_app"]

_KINDS: Final[tuple[Kind, ...]] = (
    "queued", "started", "succeeded", "failed", "skipped", "discarded", "cut", "handed_off",
    "retrying", "timed_out", "overdue",
)  # fmt: skip
#: Seconds: tasks from a millisecond to a few minutes; waits from a tenth of a millisecond.
DURATION_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
WAIT_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)


class TaskMetrics:
    """The metrics, as a listener of the task events (:func:`enable_metrics` subscribes one).

    >>> registry = prometheus_client.CollectorRegistry()
    >>> metrics = TaskMetrics(registry)
    >>> registry.get_sample_value("bgtask_offload_busy_threads")
    0.0
    """

    def __init__(self, registry: Any = prometheus_client.REGISTRY) -> None:
        counters = {
            kind: prometheus_client.Counter(
                f"bgtask_tasks_{kind}", f"Background tasks {kind.replace('_', ' ')}.", ["task"],
                registry=registry,
            )
            for kind in _KINDS
        }  # fmt: skip
        self.fallback = prometheus_client.Counter(
            "bgtask_tasks_fallback",
            "Background tasks run in this process because their engine could not be reached.",
            ["task"],
            registry=registry,
        )
        self.duration = prometheus_client.Histogram(
            "bgtask_task_duration_seconds", "Seconds from a background task's start to its end.",
            ["task"], buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.wait = prometheus_client.Histogram(
            "bgtask_task_wait_seconds", "Seconds from the response being sent to the task's start.",
            ["task"], buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        # livesum: under gunicorn, the sum over the workers alive now (child_exit).
        self.queue_depth = prometheus_client.Gauge(
            "bgtask_offload_queue_depth", "Collections waiting for an offload pool thread.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.busy_threads = prometheus_client.Gauge(
            "bgtask_offload_busy_threads", "Offload pool threads running a collection.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self._counters = counters
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its own values to a file: sampled, once a second, from the
            # first offloaded task on (a scrape happens in another worker).
            self._sampled_in = 0
        else:
            self._sampled_in = -1  # read at each scrape, exactly
            self.queue_depth.set_function(lambda: offload_stats()[0])
            self.busy_threads.set_function(lambda: offload_stats()[1])
        # The labelled children, by (kind, task): labels() costs more than a dict lookup.
        self._children: dict[tuple[str, str], Any] = {}

    def __call__(self, event: TaskEvent) -> None:
        kind, name = event.kind, event.name
        if kind == "queued" and event.environ is None:
            # Queued by a request only: a route's fixed tasks are also queued into the
            # collection they are copied from, and a worker rebuilds a job's tasks.
            return
        child = self._children.get((kind, name))
        if child is None:
            child = self._children[kind, name] = self._counters[kind].labels(name)
        child.inc()
        if kind == "started":
            wait = event.wait
            if wait is not None:
                self._child(self.wait, "wait", name).observe(wait)
            if event.mode == "fallback":
                self._child(self.fallback, "fallback", name).inc()
        elif kind in ("succeeded", "failed", "timed_out"):
            duration = event.duration
            if duration is not None:
                self._child(self.duration, "duration", name).observe(duration)
        if event.mode == "offload" and self._sampled_in not in (-1, os.getpid()):
            self._start_sampling()

    def _start_sampling(self) -> None:
        with _starting:
            if self._sampled_in == os.getpid():
                return
            self._sampled_in = os.getpid()
        start_thread(self._sample, os.getpid(), name="bgtask-metrics")

    def _sample(self, pid: int) -> None:
        tick: Any = allocate_lock()
        tick.acquire()
        while os.getpid() == pid:
            waiting, busy = offload_stats()
            self.queue_depth.set(waiting)
            self.busy_threads.set(busy)
            tick.acquire(timeout=SAMPLE_SECONDS)  # never released: a one-second wait

    def _child(self, metric: Any, key: str, name: str) -> Any:
        child = self._children.get((key, name))
        if child is None:
            child = self._children[key, name] = metric.labels(name)
        return child


#: How often a gunicorn worker writes its pool's gauges (multiprocess mode).
SAMPLE_SECONDS: Final = 1.0
_starting: Final[Any] = allocate_lock()
#: The metrics of each registry (built once: a registry refuses a name twice), and whether
#: they are subscribed now.
#: (The registry is kept too, so its id is never another's.)
_built: dict[int, tuple[TaskMetrics, list[bool], Any]] = {}


def enable_metrics(registry: Any = prometheus_client.REGISTRY) -> TaskMetrics:
    """Count every task event of this process in ``registry``; once per registry (a second
    call returns the same metrics).

    >>> registry = prometheus_client.CollectorRegistry()
    >>> enable_metrics(registry) is enable_metrics(registry)
    True
    >>> disable_metrics(registry)
    """
    with _starting:
        metrics, subscribed, _ = _built.get(id(registry)) or (TaskMetrics(registry), [], None)
        _built[id(registry)] = metrics, subscribed, registry
        if not subscribed:
            subscribe(metrics)
            subscribed.append(True)
    return metrics


def disable_metrics(registry: Any = prometheus_client.REGISTRY) -> None:
    """Stop counting in ``registry`` (the metrics stay registered, with what they counted;
    :func:`enable_metrics` counts on in them)."""
    with _starting:
        metrics, subscribed, _ = _built.get(id(registry)) or (None, [], None)
        if metrics is not None and subscribed:
            unsubscribe(metrics)
            subscribed.clear()


def metrics_app() -> WSGIApplication:
    """A WSGI app answering Prometheus' scrape: this process's registry, or, with
    ``PROMETHEUS_MULTIPROC_DIR`` set, the sum over every gunicorn worker.

    >>> app = metrics_app()
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.make_wsgi_app()
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return prometheus_client.make_wsgi_app(registry)


def child_exit(server: Any, worker: Any) -> None:
    """The gunicorn ``child_exit`` hook: a dead worker's gauges leave the live sums.

    >>> class Worker:
    ...     pid = 0
    >>> child_exit(None, Worker())  # (no PROMETHEUS_MULTIPROC_DIR here: nothing to do)
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
