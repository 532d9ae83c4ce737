"""The Flask apps the RQ and Celery tests serve under gunicorn: one per backend, mounted.

``/plain`` hands its requests' tasks to the engine (``$BGTASK_TEST_ENGINE``: ``rq`` or
``celery``), ``/retry`` to the same engine with a ``RetryPolicy``, and ``/down`` to one
that cannot be reached (a closed port). ``POST <mount>/tasks`` with a JSON body
``{"events": path, "tasks": [[kind, tag, ...], ...], "continue_on_error": bool}`` queues
those tasks (``tests.apps.remote_tasks.KINDS``), records a ``view`` event in the web process,
and a ``closed`` event when the response is closed, just before the backend's submit.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from flask import Flask, jsonify, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bgtask import BackgroundTasks  # noqa: TC001 (BgTask injects by this annotation)
from bgtask.flask import BgTask

from .remote_tasks import DECLARED, KINDS, record_event

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from flask.typing import ResponseReturnValue

    from bgtask import Backend


def create_app(name: str, backend: Backend) -> Flask:
    """A Flask app whose requests' tasks go to ``backend``."""
    app = Flask(name)
    BgTask(app, backend=backend)

    @app.post("/tasks")
    def queue_tasks(tasks: BackgroundTasks) -> ResponseReturnValue:
        body = request.get_json()
        events = body["events"]
        tasks.continue_on_error = bool(body.get("continue_on_error"))
        record_event(events, "view", mount=name)
        for kind, *arguments in body["tasks"]:
            tasks.add_task(KINDS[kind], events, *arguments)
        response = jsonify(pid=os.getpid())
        response.call_on_close(functools.partial(record_event, events, "closed", mount=name))
        return response

    return app


def _rq_backends() -> dict[str, Backend]:
    from redis import Redis
    from rq import Queue

    from bgtask.rq import RetryPolicy, RQBackend

    queue = Queue(
        os.environ["BGTASK_TEST_QUEUE"],
        connection=Redis.from_url(os.environ["BGTASK_TEST_REDIS_URL"], socket_connect_timeout=2),
    )
    unreachable = Queue(
        "bgtask-unreachable",
        connection=Redis.from_url(os.environ["BGTASK_TEST_DOWN_URL"], socket_connect_timeout=2),
    )
    return {
        "plain": RQBackend(queue, tasks=DECLARED),
        "retry": RQBackend(queue, tasks=DECLARED, retry=RetryPolicy(max=2, backoff=2)),
        "down": RQBackend(unreachable, tasks=DECLARED),
    }


def _celery_backends() -> dict[str, Backend]:
    from celery import Celery

    from bgtask.celery import CeleryBackend

    from . import celery_app

    unreachable = Celery("bgtask_unreachable", broker=os.environ["BGTASK_TEST_DOWN_URL"])
    return {
        "plain": celery_app.backend,
        "retry": celery_app.retrying,
        "down": CeleryBackend(unreachable, queue=celery_app.QUEUE, tasks=DECLARED),
    }


def build() -> DispatcherMiddleware:
    """The app gunicorn serves (``tests.apps.remote_app:build()``), for ``$BGTASK_TEST_ENGINE``."""
    engine = os.environ["BGTASK_TEST_ENGINE"]
    backends = _rq_backends() if engine == "rq" else _celery_backends()
    apps: dict[str, WSGIApplication] = {
        f"/{name}": create_app(name, backend) for name, backend in backends.items()
    }
    return DispatcherMiddleware(Flask("root"), apps)
