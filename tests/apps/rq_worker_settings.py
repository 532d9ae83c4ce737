"""The RQ workers' settings module: ``rq worker -c tests.apps.rq_worker_settings``.

RQ imports it when the worker starts (``-c``/``--config``, RQ's own mechanism), before
any job, so the worker process builds the tests' RQBackend and knows its declared tasks:
it then runs only those from that queue. An application does the same with the module
that builds its backend.
"""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue

from bgtask.flask import worker_context
from bgtask.rq import RQBackend

from .remote_tasks import DECLARED, create_app

REDIS_URL = os.environ.get("BGTASK_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUE = os.environ.get("BGTASK_TEST_QUEUE", "bgtask-tests")

backend = RQBackend(Queue(QUEUE, connection=Redis.from_url(REDIS_URL)), tasks=DECLARED)
worker_context(create_app)  # tasks run in a fresh app context of this Flask app
