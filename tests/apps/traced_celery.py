"""A Celery app with tracing for the traced Celery test: ``celery -A tests.apps.traced_celery``.

The worker's spans are written as JSON lines to ``$BGTASK_TEST_SPANS`` (set only for the
worker: importing this module elsewhere sets no tracer provider).
"""

from __future__ import annotations

import os

from celery import Celery

from bgtask.celery import CeleryBackend

from .traced_tasks import traced_task
from .traced_worker import export_spans_to

BROKER_URL = os.environ.get("BGTASK_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("BGTASK_TEST_QUEUE", "bgtask-tests")

app = Celery("bgtask_traced", broker=BROKER_URL)
app.conf.update(broker_connection_retry_on_startup=True)
backend = CeleryBackend(app, queue=QUEUE, tasks=[traced_task])
if "BGTASK_TEST_SPANS" in os.environ:
    export_spans_to(os.environ["BGTASK_TEST_SPANS"])
