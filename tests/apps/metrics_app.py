"""An app with Prometheus metrics in multiprocess mode, for the real-gunicorn metrics test.

Each task (20 ms, offloaded) appends one JSON line (its pid) to ``$BGTASK_TEST_EVENTS``;
``/metrics`` is the scrape, summed over every worker by ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

from bgtask import BackgroundTaskMiddleware, get_background_tasks
from bgtask.prometheus import enable_metrics, metrics_app

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

EVENTS = os.environ.get("BGTASK_TEST_EVENTS", os.devnull)
enable_metrics()
scrape = metrics_app()


def counted_task(number: int) -> None:
    """Take 20 ms, then say so with this worker's pid."""
    time.sleep(0.02)  # the task's own work
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(json.dumps({"pid": os.getpid(), "number": number}) + "\n")


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/metrics``: the scrape; any other path queues one task."""
    if environ["PATH_INFO"] == "/metrics":
        return scrape(environ, start_response)
    get_background_tasks().add_task(counted_task, int(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


app = BackgroundTaskMiddleware(application, offload=True)
