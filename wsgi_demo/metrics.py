"""The demo's metrics: bgtask's Prometheus counters, served on ``/metrics`` and summed per task
for the page.

Under ``make demo`` (2 gunicorn workers) ``wsgi_demo/gunicorn.conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR``, so every worker's counts add up, in the scrape and on the page.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import multiprocess

#: The columns of the page's table, in the order a task lives them.
KINDS = ("queued", "started", "succeeded", "failed", "skipped", "discarded", "cut")
_PREFIX, _SUFFIX = "bgtask_tasks_", "_total"


def registry() -> Any:
    """What a scrape reads: every worker's files in multiprocess mode, else this process."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return prometheus_client.REGISTRY
    combined = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined


def task_rows() -> list[dict[str, Any]]:
    """One row per task function: its count of each event, and its mean wait after the
    response (ms), from bgtask's metrics."""
    counts: dict[str, dict[str, float]] = {}
    for family in registry().collect():
        for sample in family.samples:
            task = sample.labels.get("task")
            if task is None:
                continue
            row = counts.setdefault(task, {})
            name = sample.name
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                row[name[len(_PREFIX) : -len(_SUFFIX)]] = sample.value
            elif name in ("bgtask_task_wait_seconds_sum", "bgtask_task_wait_seconds_count"):
                row[name.rsplit("_", 1)[1]] = sample.value
    rows = []
    for task, row in sorted(counts.items()):
        waited = row.get("count", 0.0)
        rows.append(
            {
                "task": task,
                "counts": [int(row.get(kind, 0)) for kind in KINDS],
                "wait_ms": 1000 * row.get("sum", 0.0) / waited if waited else None,
            }
        )
    return rows
