"""The Celery app of the Celery tests: ``celery -A tests.apps.celery_app worker`` loads it.

Building the backends here registers bgtask's task and declares the task functions, so
the workers have the one and run only the others. The broker
and the queue come from the environment, so every test run uses a queue of its own.
A job that fails for good records a ``job_failed`` event, naming its tasks' tags, in the
events file its tasks were given: the tests' signal that nothing more will run.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_failure

from bgtask.celery import CeleryBackend, RetryPolicy
from bgtask.flask import worker_context

from .remote_tasks import DECLARED, create_app, record_event

BROKER_URL = os.environ.get("BGTASK_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("BGTASK_TEST_QUEUE", "bgtask-tests")

app = Celery("bgtask_tests", broker=BROKER_URL)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=True)

backend = CeleryBackend(app, queue=QUEUE, tasks=DECLARED)
retrying = CeleryBackend(app, queue=QUEUE, tasks=DECLARED, retry=RetryPolicy(max=2, backoff=0.5))
worker_context(create_app)  # tasks run in a fresh app context of this Flask app


@task_failure.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _record_job_failure(
    sender: Any = None, args: Any = None, exception: Any = None, einfo: Any = None, **extra: Any
) -> None:
    payload = args[0] if args else None
    if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), list):
        return  # a crafted message the worker refused
    tasks = [task for task in payload["tasks"] if isinstance(task, dict) and "func" in task]
    if tasks and len(tasks[0].get("args", ())) > 1:
        tags = [task["args"][1] for task in tasks]
        # What Celery's failure event (and Flower) carries: the exception and the traceback.
        record = f"{exception!r}\n{getattr(einfo, 'traceback', '')}"
        record_event(tasks[0]["args"][0], "job_failed", tags=tags, record=record)
