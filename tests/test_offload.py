"""Offload mode in one process: close() hands the request's tasks to a pool of task threads.

Every wait is on an Event, a Barrier or ``drain()`` with a deadline, never a sleep. What
forks or exits runs in a subprocess of this interpreter with a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import logging
import os
import textwrap
import threading
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import flask
import pytest

from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    OffloadPool,
    RequestTasks,
    background,
    drain,
    get_background_tasks,
)
from bgtask.flask import BgTask
from bgtask.testing import capture_tasks, closing_client

from .helpers.forking import run_python
from .helpers.recording import request_id
from .helpers.wsgi import Call

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: How long anything waits for an event before the test fails (each takes milliseconds).
DEADLINE = 10.0
#: How long a subprocess may take before the test fails (each takes about a second).
#: The environ key through which a test tells ``app_queuing`` what to queue.
QUEUE = "test.queue"


def app_queuing(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Calls the request's ``environ[QUEUE]`` with its collection, then answers ``ok``."""
    environ[QUEUE](get_background_tasks())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def call(app: BackgroundTaskMiddleware, queue: Callable[[BackgroundTasks], object]) -> Call:
    """A request through ``app`` whose view runs ``queue(tasks)``; not yet iterated or closed."""
    return Call(app, **{QUEUE: queue})


def request(app: BackgroundTaskMiddleware, queue: Callable[[BackgroundTasks], object]) -> bytes:
    """A whole request (iterated, then closed, as a server does)."""
    return call(app, queue).serve()


def offloaded(**pool: Any) -> BackgroundTaskMiddleware:
    """``app_queuing`` behind a middleware with a pool of its own."""
    return BackgroundTaskMiddleware(app_queuing, offload=OffloadPool(**pool))


def record(ran: list[str], label: str) -> None:
    ran.append(label)


def fail(ran: list[str], label: str) -> None:
    ran.append(label)
    msg = "smtp down"
    raise RuntimeError(msg)


def problems(log: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """The bgtask WARNING and ERROR lines, as (level, message)."""
    return [
        (entry.levelname, entry.getMessage())
        for entry in log.records
        if entry.name == "bgtask" and entry.levelno >= logging.WARNING
    ]


# -- close() returns at once ---------------------------------------------------------------


def test_close_returns_before_an_offloaded_task_runs() -> None:
    """The task waits for close() to have returned: it could not, had close() run it."""
    closed, done = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def wait_for_close() -> None:
        seen["close had returned"] = closed.wait(DEADLINE)
        seen["thread"] = threading.get_ident()
        done.set()

    response = call(offloaded(threads=1), lambda tasks: tasks.add_task(wait_for_close))
    assert response.body() == b"ok"
    response.close()
    closed.set()

    assert done.wait(DEADLINE)
    assert seen["close had returned"] is True
    assert seen["thread"] != threading.get_ident()


def test_request_without_tasks_never_starts_a_pool_thread() -> None:
    """Nothing queued: close() hands nothing over and the pool stays unstarted."""
    pool = OffloadPool(threads=1)
    before = os_threads()

    assert request(BackgroundTaskMiddleware(app_queuing, offload=pool), lambda tasks: None) == b"ok"

    assert os_threads() == before


def os_threads() -> int:
    """The threads of this process, as the kernel counts them (native ones included)."""
    return len(os.listdir("/proc/self/task"))


# -- within one request: exactly as inline -------------------------------------------------


def run_both_ways(
    queue: Callable[[BackgroundTasks, list[str]], None], log: pytest.LogCaptureFixture
) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """What ran and what was logged, inline then offloaded, for the same request."""
    outcomes = []
    for offload in (False, OffloadPool(threads=2)):
        log.clear()
        ran: list[str] = []
        app = BackgroundTaskMiddleware(app_queuing, offload=offload)
        request(app, lambda tasks, ran=ran: queue(tasks, ran))  # type: ignore[misc]
        assert drain(DEADLINE)
        outcomes.append((ran, problems(log)))
    return outcomes


def test_offloaded_request_runs_in_order_and_stops_at_the_first_failure(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Same order, same skipped tasks, same log lines as inline."""

    def queue(tasks: BackgroundTasks, ran: list[str]) -> None:
        tasks.add_task(record, ran, "first")
        tasks.add_task(record, ran, "second")
        tasks.add_task(fail, ran, "fails")
        tasks.add_task(record, ran, "skipped")

    inline, offload = run_both_ways(queue, bgtask_log)

    assert offload == inline
    assert offload == (
        ["first", "second", "fails"],
        [
            ("ERROR", "background task tests.test_offload.fail failed"),
            (
                "WARNING",
                "background task tests.test_offload.record skipped: "
                "an earlier task of its collection failed",
            ),
        ],
    )


def test_offloaded_request_with_continue_on_error_runs_every_task(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """continue_on_error set by the view: every task runs, each failure logged, as inline."""

    def queue(tasks: BackgroundTasks, ran: list[str]) -> None:
        tasks.continue_on_error = True
        tasks.add_task(fail, ran, "fails once")
        tasks.add_task(record, ran, "runs")
        tasks.add_task(fail, ran, "fails twice")
        tasks.add_task(record, ran, "runs too")

    inline, offload = run_both_ways(queue, bgtask_log)

    assert offload == inline
    assert offload == (
        ["fails once", "runs", "fails twice", "runs too"],
        [("ERROR", "background task tests.test_offload.fail failed")] * 2,
    )


def test_system_exit_in_an_offloaded_task_is_logged_and_the_pool_keeps_serving(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A task's own SystemExit is its failure: logged, and the pool runs the next request's."""
    app = offloaded(threads=1)
    ran: list[str] = []

    def exit_now() -> None:
        raise SystemExit(3)

    request(app, lambda tasks: tasks.add_task(exit_now))
    request(app, lambda tasks: tasks.add_task(record, ran, "next request"))

    assert drain(DEADLINE)
    assert ran == ["next request"]
    [(level, message)] = problems(bgtask_log)
    assert level == "ERROR"
    assert "background task" in message
    assert "exit_now failed" in message


# -- across requests: concurrent, bounded ----------------------------------------------------


def test_collections_of_different_requests_run_concurrently() -> None:
    """Two requests' tasks meet at one Barrier(2): only possible if both run at once."""
    barrier = threading.Barrier(2, timeout=DEADLINE)
    ran: list[str] = []

    def meet(label: str) -> None:
        barrier.wait()
        ran.append(label)

    app = offloaded(threads=2)
    request(app, lambda tasks: tasks.add_task(meet, "first"))
    request(app, lambda tasks: tasks.add_task(meet, "second"))

    assert drain(DEADLINE)
    assert sorted(ran) == ["first", "second"]


def test_pool_runs_no_more_collections_at_once_than_its_threads() -> None:
    """threads=2, three requests blocking: the third starts only once the others are released."""
    release, two_started = threading.Event(), threading.Event()
    started: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def block(label: str) -> None:
        with lock:
            started.append((label, release.is_set()))
            if len(started) == 2:
                two_started.set()
        release.wait(DEADLINE)

    app = offloaded(threads=2)
    try:
        for label in ("a", "b", "c"):
            request(app, lambda tasks, label=label: tasks.add_task(block, label))  # type: ignore[misc]
        assert two_started.wait(DEADLINE)
        with lock:
            assert sorted(started) == [("a", False), ("b", False)]
    finally:
        release.set()

    assert drain(DEADLINE)
    assert started[2] == ("c", True)


def test_full_queue_runs_the_collection_inline_with_one_warning_per_interval(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """threads=1, max_pending=1: the third request's close() runs its tasks; warned once."""
    release, first_started = threading.Event(), threading.Event()
    ran: list[tuple[str, bool]] = []
    main = threading.get_ident()

    def block() -> None:
        first_started.set()
        release.wait(DEADLINE)

    def note(label: str) -> None:
        ran.append((label, threading.get_ident() == main))

    app = offloaded(threads=1, max_pending=1, warn_interval=60.0)
    try:
        request(app, lambda tasks: tasks.add_task(block))
        assert first_started.wait(DEADLINE)  # the only thread is busy
        request(app, lambda tasks: tasks.add_task(note, "queued"))  # the only pending slot
        assert ran == []

        request(app, lambda tasks: tasks.add_task(note, "third"))
        assert ran == [("third", True)], "ran inline, before close() returned"
        [(level, message)] = problems(bgtask_log)
        assert level == "WARNING"
        assert message.startswith(
            "offload pool full (2 collections in flight, 1 collection waiting for a thread, "
            "1 thread running,"
        )
        assert "running tasks inline in close() until it drains" in message

        request(app, lambda tasks: tasks.add_task(note, "fourth"))
        assert ran == [("third", True), ("fourth", True)]
        assert len(problems(bgtask_log)) == 1, "no second warning within warn_interval"
    finally:
        release.set()

    assert drain(DEADLINE)
    assert ran == [("third", True), ("fourth", True), ("queued", False)]


@pytest.mark.parametrize("max_pending", [1000, 2])
def test_no_task_is_lost_or_run_twice_when_eight_threads_send_500_requests(
    max_pending: int, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Each request's two tasks run exactly once, in order, queued or (when full) inline."""
    app = offloaded(threads=4, max_pending=max_pending)
    ran: list[str] = []
    errors: list[BaseException] = []

    def client(first: int) -> None:
        try:
            for n in range(first, 500, 8):
                assert request(app, lambda tasks, n=n: queue_two(tasks, n)) == b"ok"  # type: ignore[misc]
        except BaseException as exc:
            errors.append(exc)

    def queue_two(tasks: BackgroundTasks, n: int) -> None:
        tasks.add_task(record, ran, f"{n} first")
        tasks.add_task(record, ran, f"{n} second")

    clients = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(DEADLINE)

    assert drain(DEADLINE)
    assert errors == []
    counts = collections.Counter(ran)
    assert counts == collections.Counter(
        f"{n} {which}" for n in range(500) for which in ("first", "second")
    )
    position = {label: i for i, label in enumerate(ran)}
    assert all(position[f"{n} first"] < position[f"{n} second"] for n in range(500))
    assert all(level == "WARNING" for level, _ in problems(bgtask_log))


# -- drain ---------------------------------------------------------------------------------


def test_drain_returns_false_while_an_offloaded_task_blocks_and_true_after() -> None:
    """drain(timeout) reports the blocked task; once it is released, drain() succeeds."""
    release, started = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(DEADLINE)

    request(offloaded(threads=1), lambda tasks: tasks.add_task(block))
    try:
        assert started.wait(DEADLINE)
        assert drain(timeout=0.05) is False
    finally:
        release.set()

    assert drain(timeout=DEADLINE) is True


def test_timed_out_drains_leave_no_memory_behind() -> None:
    """20,000 drain(timeout=0) calls while a task blocks: no per-call growth (each call
    used to leave a waiter of ~1.6 KB behind)."""
    release, started = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(DEADLINE * 12)  # released by the test; tracing makes the loop slow

    request(offloaded(threads=1), lambda tasks: tasks.add_task(block))
    try:
        assert started.wait(DEADLINE)
        for _ in range(1_000):  # warm-up: caches, free lists
            drain(timeout=0)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(20_000):
            assert drain(timeout=0) is False
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "lineno"))
        tracemalloc.stop()
    finally:
        release.set()
    assert drain(timeout=DEADLINE) is True
    assert grown < 64 * 1024, f"{grown} bytes left behind by 20,000 timed-out drains"


def test_pools_that_are_gone_leave_nothing_registered_for_the_exit_drain() -> None:
    """10,000 pools built and dropped: the exit drain's registry does not grow with them."""
    for _ in range(100):
        OffloadPool(threads=1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10_000):
        OffloadPool(threads=1)
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "lineno"))
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes left behind by 10,000 dropped pools"


def test_drain_waits_for_collections_still_queued_behind_a_busy_thread() -> None:
    """A collection not yet started counts too: drain() returns once it has run."""
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def block() -> None:
        started.set()
        release.wait(DEADLINE)

    app = offloaded(threads=1)
    request(app, lambda tasks: tasks.add_task(block))
    request(app, lambda tasks: tasks.add_task(record, ran, "queued"))
    try:
        assert started.wait(DEADLINE)
        assert drain(timeout=0.05) is False
    finally:
        release.set()

    assert drain(timeout=DEADLINE) is True
    assert ran == ["queued"]


def test_drain_with_a_timeout_longer_than_a_lock_can_wait_still_waits() -> None:
    """drain(1e10) with a busy pool waits for it, as it does for a busy event loop."""

    def short_work() -> None:
        time.sleep(0.05)  # the task's own work, not a synchronisation

    request(offloaded(threads=1), lambda tasks: tasks.add_task(short_work))
    try:
        assert drain(timeout=1e10) is True
    finally:
        assert drain(timeout=DEADLINE)


def test_drain_from_inside_an_offloaded_task_raises_instead_of_waiting_on_itself() -> None:
    """An offloaded task calling drain() gets RuntimeError, like an async task does."""
    outcome: list[object] = []
    done = threading.Event()

    def drain_inside() -> None:
        try:
            outcome.append(drain(timeout=0.2))
        except RuntimeError as exc:
            outcome.append(exc)
        done.set()

    request(offloaded(threads=1), lambda tasks: tasks.add_task(drain_inside))

    assert done.wait(DEADLINE)
    assert isinstance(outcome[0], RuntimeError)


# -- what a task sees ----------------------------------------------------------------------


async def record_async(ran: list[tuple[str, int]], label: str) -> None:
    await asyncio.sleep(0)
    ran.append((label, threading.get_ident()))


def test_async_tasks_are_offloaded_and_keep_their_place_in_the_order() -> None:
    """sync, async, async, sync: one order; sync on the pool thread, async on the loop."""
    closed = threading.Event()
    ran: list[tuple[str, int]] = []

    async def wait_for_close() -> None:
        ran.append(("close had returned", await asyncio.to_thread(closed.wait, DEADLINE)))

    def sync(label: str) -> None:
        ran.append((label, threading.get_ident()))

    def queue(tasks: BackgroundTasks) -> None:
        tasks.add_task(wait_for_close)
        tasks.add_task(sync, "sync 1")
        tasks.add_task(record_async, ran, "async 1")
        tasks.add_task(record_async, ran, "async 2")
        tasks.add_task(sync, "sync 2")

    request(offloaded(threads=1), queue)
    closed.set()

    assert drain(DEADLINE)
    assert [label for label, _ in ran] == [
        "close had returned",
        "sync 1",
        "async 1",
        "async 2",
        "sync 2",
    ]
    assert ran[0] == ("close had returned", True)
    pool_thread, loop_thread = ran[1][1], ran[2][1]
    assert ran[4][1] == pool_thread
    assert ran[3][1] == loop_thread
    assert len({threading.get_ident(), pool_thread, loop_thread}) == 3


def test_request_contextvars_reach_offloaded_tasks() -> None:
    """Two concurrent requests, two request ids: each task sees its own request's."""
    barrier = threading.Barrier(2, timeout=DEADLINE)
    seen: dict[str, str] = {}

    def log_line(label: str) -> None:
        barrier.wait()  # both requests' tasks run at once, on two pool threads
        seen[label] = request_id.get()

    def queue(tasks: BackgroundTasks, label: str) -> None:
        token = request_id.set(f"request {label}")
        try:
            tasks.add_task(log_line, label)
        finally:
            request_id.reset(token)  # the task keeps the context it was queued in

    app = offloaded(threads=2)
    request(app, lambda tasks: queue(tasks, "a"))
    request(app, lambda tasks: queue(tasks, "b"))

    assert drain(DEADLINE)
    assert seen == {"a": "request a", "b": "request b"}
    assert request_id.get() == "-"


def test_capture_tasks_without_run_suppresses_offloaded_tasks() -> None:
    """capture_tasks(run=False) records the tasks; the pool thread discards them."""
    ran: list[str] = []
    app = offloaded(threads=1)

    with capture_tasks(run=False) as queued:
        request(app, lambda tasks: tasks.add_task(record, ran, "not sent"))
    assert drain(DEADLINE)
    assert queued.queued(record, ran, "not sent")
    assert ran == []

    with capture_tasks() as queued:
        request(app, lambda tasks: tasks.add_task(record, ran, "sent"))
    assert drain(DEADLINE)
    assert queued.queued(record, ran, "sent")
    assert ran == ["sent"]


# -- configuration errors -------------------------------------------------------------------


class InlineBackend:
    def submit(self, tasks: RequestTasks, /) -> None:
        tasks.run_for_request()


@pytest.mark.parametrize("offload", ["yes", 1, None])
def test_offload_that_is_not_a_bool_or_a_pool_is_a_type_error(offload: Any) -> None:
    """offload="yes" (or 1, or None) is refused, by the middleware and by BgTask."""
    with pytest.raises(TypeError, match="offload must be True, False or an OffloadPool, got"):
        BackgroundTaskMiddleware(app_queuing, offload=offload)
    with pytest.raises(TypeError, match="offload must be True, False or an OffloadPool"):
        BgTask(flask.Flask("refused"), offload=offload)


@pytest.mark.parametrize("offload", [True, OffloadPool(threads=1)], ids=["True", "pool"])
def test_offload_with_a_backend_is_a_value_error(offload: bool | OffloadPool) -> None:
    """An OffloadPool is a backend: asking for both is refused."""
    with pytest.raises(ValueError, match="pass either offload or backend, not both"):
        BackgroundTaskMiddleware(app_queuing, offload=offload, backend=InlineBackend())
    with pytest.raises(ValueError, match="pass either offload or backend, not both"):
        BgTask(flask.Flask("refused"), offload=offload, backend=InlineBackend())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threads": 0}, "needs at least one thread, got 0"),
        ({"threads": -1}, "needs at least one thread, got -1"),
        ({"max_pending": -1}, "max_pending must be zero or more, got -1"),
    ],
)
def test_pool_sizes_out_of_range_are_value_errors(options: dict[str, int], message: str) -> None:
    """OffloadPool(threads=0) and a negative max_pending are refused."""
    with pytest.raises(ValueError, match=message):
        OffloadPool(**options)


def test_flask_extension_refused_for_a_bad_offload_can_be_installed_again() -> None:
    """After BgTask(app, offload="yes") raised, BgTask(app, offload=True) installs bgtask."""
    app = flask.Flask("retried")
    with pytest.raises(TypeError):
        BgTask(app, offload="yes")  # type: ignore[arg-type]

    BgTask(app, offload=True)

    assert isinstance(app.wsgi_app, BackgroundTaskMiddleware)


# -- Flask ---------------------------------------------------------------------------------


def test_flask_offloaded_task_runs_in_a_fresh_app_context_then_teardown() -> None:
    """current_app works, no request context, teardown_appcontext after the task."""
    app = flask.Flask("offloaded")
    app.config["GREETING"] = "hello"
    BgTask(app, offload=OffloadPool(threads=1))
    closed = threading.Event()
    events: list[str] = []
    main = threading.get_ident()

    def task(email: str) -> None:
        closed.wait(DEADLINE)
        flask.g.marker = "task"
        events.append(
            f"task {email} {flask.current_app.name} {flask.current_app.config['GREETING']} "
            f"request context: {flask.has_request_context()}, "
            f"other thread: {threading.get_ident() != main}, close had returned: {closed.is_set()}"
        )

    @app.teardown_appcontext
    def teardown(error: BaseException | None) -> None:
        events.append(f"teardown of {flask.g.get('marker', 'the request')}")

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(task, flask.request.form["email"])
        return "ok"

    response = closing_client(app.test_client()).post("/signup", data={"email": "a@b.c"})
    assert response.get_data() == b"ok"
    closed.set()

    assert drain(DEADLINE)
    assert events == [
        "teardown of the request",
        "task a@b.c offloaded hello request context: False, other thread: True, "
        "close had returned: True",
        "teardown of task",
    ]


def test_flask_styles_keep_their_order_when_offloaded() -> None:
    """Queued (injected, helper), then the response's background, then @background."""
    app = flask.Flask("styles")
    BgTask(app, offload=OffloadPool(threads=1))
    ran: list[str] = []

    @app.get("/")
    @background(BackgroundTask(record, ran, "decorator"))
    def index(tasks: BackgroundTasks) -> flask.Response:
        tasks.add_task(record, ran, "injected")
        get_background_tasks().add_task(record, ran, "helper")
        response = flask.make_response("ok")
        response.background = BackgroundTask(record, ran, "response")  # type: ignore[attr-defined]
        return response

    assert closing_client(app.test_client()).get("/").get_data() == b"ok"

    assert drain(DEADLINE)
    assert ran == ["injected", "helper", "response", "decorator"]


# -- fork and exit (subprocesses) -------------------------------------------------------------


#: What every script starts with: an app whose requests queue ``environ["test.tasks"]``.
SCRIPT_APP = textwrap.dedent("""
    import json, os, sys, threading, time
    from pathlib import Path
    from bgtask import BackgroundTaskMiddleware, OffloadPool, drain, get_background_tasks
    from tests.helpers.forking import read_child
    from tests.helpers.wsgi import serve

    DEADLINE = 10.0

    def app(environ, start_response):
        for task in environ["test.tasks"]:
            get_background_tasks().add_task(*task)
        start_response("200 OK", [])
        return [b"ok"]

    def offload(middleware, *task):
        serve(middleware, **{"test.tasks": [task]})
""")


def run_app_script(
    script: str,
    *args: str,
    options: Sequence[str] = ("-W", "error"),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``SCRIPT_APP`` then ``script`` in a fresh interpreter, bounded by a timeout."""
    return run_python(SCRIPT_APP + textwrap.dedent(script), *args, options=options, env=env)


@pytest.mark.slow
def test_forked_child_runs_offloaded_tasks_on_a_fresh_pool() -> None:
    """The parent's only pool thread is busy at fork(): the child's tasks still run."""
    script = """
    pool = OffloadPool(threads=1)
    middleware = BackgroundTaskMiddleware(app, offload=pool)
    parent_started, parent_release = threading.Event(), threading.Event()

    def hold():
        parent_started.set()
        parent_release.wait(DEADLINE)

    offload(middleware, hold)
    assert parent_started.wait(DEADLINE)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            ran = threading.Event()
            threads = []
            def child_task():
                threads.append(threading.get_ident())
                ran.set()
            threads_before = len(os.listdir("/proc/self/task"))
            offload(middleware, child_task)
            child = {
                "ran": ran.wait(DEADLINE),
                "drained": drain(DEADLINE),
                "pool_thread": bool(threads) and threads[0] != threading.get_ident(),
                # The parent's pool thread did not come along; the child started its own.
                "fresh_pool": (threads_before, len(os.listdir("/proc/self/task"))) == (1, 2),
            }
            os.write(write_end, json.dumps(child).encode())
            status = 0
        finally:
            os._exit(status)

    os.close(write_end)
    output, exit_code = read_child(pid, read_end, DEADLINE)
    parent_release.set()
    report = {"child": output, "exit_code": exit_code, "drained": drain(DEADLINE)}
    print(json.dumps(report))
    """
    # Python 3.12+ warns (DeprecationWarning) on fork() while the pool thread runs: that
    # thread being alive is the point of the test.
    result = run_app_script(script, options=("-W", "error", "-W", "ignore::DeprecationWarning"))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["exit_code"] == 0, report["child"]
    assert json.loads(report["child"]) == {
        "ran": True,
        "drained": True,
        "pool_thread": True,
        "fresh_pool": True,
    }
    assert report["drained"] is True


@pytest.mark.slow
def test_exit_waits_for_an_offloaded_task_still_running(tmp_path: Path) -> None:
    """The script ends right after close(): the 0.5 s task still finishes before exit."""
    script = """
    marker = Path(sys.argv[1])

    def write_after_a_while():
        time.sleep(0.5)  # the task's own slow work
        marker.write_text("done")

    offload(BackgroundTaskMiddleware(app, offload=True), write_after_a_while)
    print("returned before the task ended:", not marker.exists())
    """
    marker = tmp_path / "marker"

    result = run_app_script(script, str(marker))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == ["returned before the task ended: True"]
    assert marker.read_text() == "done"


@pytest.mark.slow
def test_exit_deadline_names_the_offloaded_tasks_it_cuts(tmp_path: Path) -> None:
    """BGTASK_EXIT_TIMEOUT=0.3: exit in seconds, ERROR lines name the queued and running tasks."""
    script = """
    import logging
    logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
    marker = Path(sys.argv[1])
    started = threading.Event()

    def busy_for_30_seconds():
        started.set()
        time.sleep(30)  # the task's own slow work

    def never_started():
        marker.write_text("ran")

    middleware = BackgroundTaskMiddleware(app, offload=OffloadPool(threads=1))
    offload(middleware, busy_for_30_seconds)
    offload(middleware, never_started)
    if not started.wait(DEADLINE):
        sys.exit("the first task never started")
    """
    marker = tmp_path / "marker"
    began = time.monotonic()

    result = run_app_script(script, str(marker), env={"BGTASK_EXIT_TIMEOUT": "0.3"})

    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [  # in the order the collections were accepted
        "ERROR bgtask background task __main__.busy_for_30_seconds cut: exit deadline passed "
        "while it ran",
        "ERROR bgtask background task __main__.never_started cut: exit deadline passed "
        "before it started",
    ]
    assert not marker.exists()
    # The default deadline is 10 s and the task 30 s: far under both.
    assert elapsed < 5.0, f"exit took {elapsed:.1f} s"
