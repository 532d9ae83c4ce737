"""What drain() and the exit drain wait for, and what the exit deadline names when it cuts.

Inline runs (a request's tasks in the server's thread), offloaded collections, and the
bound that keeps the offload queue drainable within the exit timeout.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from bgtask import BackgroundTaskMiddleware, drain, get_background_tasks

from .helpers.forking import run_python
from .helpers.wsgi import serve

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

DEADLINE = 10.0


def queuing(*tasks: Callable[[], object]) -> WSGIApplication:
    """An app that queues ``tasks``, in order."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        for task in tasks:
            get_background_tasks().add_task(task)
        start_response("200 OK", [])
        return [b"ok"]

    return app


def test_drain_waits_for_inline_tasks_running_in_another_thread() -> None:
    """A request's sync task running in a server thread is pending work for drain()."""
    release, started = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(DEADLINE)

    server_thread = threading.Thread(target=serve, args=(BackgroundTaskMiddleware(queuing(block)),))
    server_thread.start()
    try:
        assert started.wait(DEADLINE)
        assert drain(timeout=0.05) is False
    finally:
        release.set()
    assert drain(timeout=DEADLINE) is True
    server_thread.join(DEADLINE)


def test_drain_from_inside_an_inline_task_raises_instead_of_waiting_on_itself() -> None:
    """It would wait for the very task calling it: RuntimeError, logged as its failure."""
    outcome: list[BaseException] = []

    def drain_inside() -> None:
        try:
            drain(timeout=1)
        except RuntimeError as exc:
            outcome.append(exc)

    serve(BackgroundTaskMiddleware(queuing(drain_inside)))
    [error] = outcome
    assert "it would wait for itself" in str(error)


EXIT_SCRIPT = """
    import logging, sys, threading, time
    from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
    from tests.helpers.wsgi import serve

    logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
    offload = sys.argv[1] == "offload"
    started = threading.Event()

    def quick_one():
        pass

    def busy_for_30_seconds():
        started.set()
        time.sleep(30)  # the task's own slow work

    def after_the_busy_one():
        pass

    def app(environ, start_response):
        for task in (quick_one, busy_for_30_seconds, after_the_busy_one):
            get_background_tasks().add_task(task)
        start_response("200 OK", [])
        return [b"ok"]

    middleware = BackgroundTaskMiddleware(
        app, offload=OffloadPool(threads=1) if offload else False
    )
    if offload:
        serve(middleware)
    else:
        # A server thread that the interpreter does not wait for, as gunicorn's are not
        # once the exit deadline has passed.
        threading.Thread(target=serve, args=(middleware,), daemon=True).start()
    if not started.wait(10):
        sys.exit("the busy task never started")
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "offload"])
def test_exit_deadline_names_only_the_tasks_running_or_not_started(mode: str) -> None:
    """A task that already finished is not in the cut's ERROR line."""
    began = time.monotonic()
    result = run_python(EXIT_SCRIPT, mode, env={"BGTASK_EXIT_TIMEOUT": "0.3"})
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "ERROR bgtask background task __main__.busy_for_30_seconds cut: exit deadline passed "
        "while it ran",
        "ERROR bgtask background task __main__.after_the_busy_one cut: exit deadline passed "
        "before it started",
    ]
    assert elapsed < 8.0, f"exit took {elapsed:.1f} s"


@pytest.mark.slow
def test_the_offload_queue_holds_only_what_the_exit_timeout_can_drain() -> None:
    """1 thread, 0.2 s tasks, a 1 s exit timeout: half of it drains 2 collections; the
    others run inline (back-pressure), and exit loses nothing."""
    script = """
        import json, logging, sys, threading, time
        from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks
        from tests.helpers.wsgi import serve

        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
        results = open(sys.argv[1], "a")
        main = threading.get_ident()

        def task(n):
            time.sleep(0.2)  # the task's own work
            results.write(json.dumps([n, threading.get_ident() == main]) + "\\n")
            results.flush()

        def app(environ, start_response):
            get_background_tasks().add_task(task, int(environ["QUERY_STRING"]))
            start_response("200 OK", [])
            return [b"ok"]

        middleware = BackgroundTaskMiddleware(app, offload=OffloadPool(threads=1))
        for n in range(12):
            serve(middleware, QUERY_STRING=str(n))
    """
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "results.jsonl"
        result = run_python(script, str(path), env={"BGTASK_EXIT_TIMEOUT": "1"})
        assert result.returncode == 0, result.stderr
        ran = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(n for n, _ in ran) == list(range(12)), "exit lost no task"
    inline = [n for n, in_main in ran if in_main]
    # Each inline run lets the pool finish one: about every other request runs inline.
    assert len(inline) >= 4, f"only {inline} ran inline: the queue outgrew the exit timeout"
    assert "ERROR" not in result.stderr
    assert "offload pool full" in result.stderr
