"""The apps the end-to-end benchmarks serve, and the per-worker counters they keep.

One gunicorn server serves every WSGI contender, by the first path segment, so they share
the same workers and run interleaved:

* ``/bare`` (and ``/bare-again``, identical: the A/A control): a Flask app;
  ``?task=sync&ms=20`` registers the task with ``response.call_on_close`` (Flask's own
  way), without ``task`` it queues nothing;
* ``/inline``, ``/offload``, ``/offload-default``: the same view in Flask apps with
  ``BgTask`` (inline; an ``OffloadPool`` of ``$BGTASK_BENCH_POOL_THREADS`` threads; the
  default pool), queuing ``sync_task`` or ``async_task`` with ``add_task``;
* ``/wsgi``, ``/wsgi-bgtask``: a plain WSGI app, bare and under the middleware.

``starlette_app`` is the same for uvicorn: ``/starlette?task=async&ms=20`` with Starlette's
``BackgroundTasks``.

Each worker process counts requests, tasks queued and tasks finished in a small file of its
own (``$BGTASK_BENCH_STATS/<pid>``, three int64 in a shared mapping), so the benchmark can
read every worker's counters at any moment, without a request that would land on one of
them at random.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import flask

from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
from bgtask.flask import BgTask

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUESTS, QUEUED, FINISHED = 0, 1, 2
SLOTS = 3


class Counters:
    """This process's counters, in ``$BGTASK_BENCH_STATS/<pid>`` (opened on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._values: memoryview | None = None

    def add(self, slot: int) -> None:
        if self._pid != os.getpid():
            self._open()
        values = self._values
        assert values is not None
        with self._lock:
            values[slot] += 1

    def _open(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            directory = os.environ.get("BGTASK_BENCH_STATS")
            if directory is None:
                # Not under the benchmark: count in memory only.
                self._values = memoryview(bytearray(8 * SLOTS)).cast("q")
            else:
                path = os.path.join(directory, str(os.getpid()))
                with open(path, "wb+") as file:
                    file.write(bytes(8 * SLOTS))
                    file.flush()
                    mapping = mmap.mmap(file.fileno(), 8 * SLOTS)
                self._values = memoryview(mapping).cast("q")
            self._pid = os.getpid()


counters = Counters()


def sync_task(ms: float) -> None:
    if ms:
        time.sleep(ms / 1000)
    counters.add(FINISHED)


async def async_task(ms: float) -> None:
    if ms:
        await asyncio.sleep(ms / 1000)
    counters.add(FINISHED)


TASKS = {"sync": sync_task, "async": async_task}


def _task_query() -> tuple[str, float]:
    args = flask.request.args
    return args.get("task", ""), float(args.get("ms", "0"))


def _bare_view() -> flask.Response:
    counters.add(REQUESTS)
    response = flask.make_response("ok")
    kind, ms = _task_query()
    if kind == "sync":
        counters.add(QUEUED)
        response.call_on_close(partial(sync_task, ms))
    return response


def _bgtask_view() -> flask.Response:
    counters.add(REQUESTS)
    kind, ms = _task_query()
    if kind:
        counters.add(QUEUED)
        get_background_tasks().add_task(TASKS[kind], ms)
    return flask.make_response("ok")


def _flask(name: str, view: Any, **bgtask: Any) -> flask.Flask:
    app = flask.Flask(name)
    if bgtask:
        BgTask(app, **bgtask)
    app.add_url_rule(f"/{name}", view_func=view)
    return app


def _wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    counters.add(REQUESTS)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _pool_threads() -> int | None:
    configured = os.environ.get("BGTASK_BENCH_POOL_THREADS")
    return int(configured) if configured else None


APPS: dict[str, WSGIApplication] = {
    "bare": _flask("bare", _bare_view),
    # An identical second bare app: the A/A control of the benchmarks.
    "bare-again": _flask("bare-again", _bare_view),
    "inline": _flask("inline", _bgtask_view, offload=False),
    "offload": _flask("offload", _bgtask_view, offload=OffloadPool(threads=_pool_threads())),
    "offload-default": _flask("offload-default", _bgtask_view, offload=True),
    "wsgi": _wsgi,
    "wsgi-bgtask": BackgroundTaskMiddleware(_wsgi),
}


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on the first path segment (the same few operations for every contender)."""
    target = APPS.get(environ["PATH_INFO"].split("/", 2)[1])
    if target is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    return target(environ, start_response)


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTasks
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Any) -> PlainTextResponse:
        counters.add(REQUESTS)
        kind = request.query_params.get("task", "")
        ms = float(request.query_params.get("ms", "0"))
        tasks = None
        if kind:
            counters.add(QUEUED)
            tasks = BackgroundTasks()
            tasks.add_task(TASKS[kind], ms)
        return PlainTextResponse("ok", background=tasks)

    async def ready(request: Any) -> PlainTextResponse:
        return PlainTextResponse("")

    return Starlette(routes=[Route("/starlette", endpoint), Route("/", ready)])


def __getattr__(name: str) -> Any:
    # Built on demand: the gunicorn workers never import Starlette.
    if name == "starlette_app":
        return _starlette_app()
    raise AttributeError(name)
