"""close() never hangs on an engine: every hand-off is bounded by bgtask's own deadline.

A broker that accepts connections and never answers is a socket of the test's own
(``tests.helpers.netfaults.SilentServer``); no service is needed. Redis clients keep their
defaults (``Redis.from_url``: 5 s), Celery its ``redis://`` transport (no limit at all):
``close()`` still returns after ``handoff_timeout`` and the tasks run here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import pytest
from celery import Celery
from redis import Redis
from rq import Queue

from bgtask import BackgroundTask, BackgroundTaskMiddleware
from bgtask._handoff import NOT_SENT, SENT, UNKNOWN, Handoff, HandoffBusy, HandoffTimeout
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend

from .apps.remote_tasks import DECLARED, record
from .helpers.deployments import queueing
from .helpers.engines import tags_run
from .helpers.forking import run_python
from .helpers.netfaults import SilentServer
from .helpers.servers import wait_for
from .helpers.wsgi import Call

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator
    from pathlib import Path

    from bgtask import Backend


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def rq_backend(port: int) -> RQBackend:
    queue = Queue("bgtask-silent", connection=Redis.from_url(f"redis://127.0.0.1:{port}/0"))
    return RQBackend(queue)


def celery_backend(port: int) -> CeleryBackend:
    app = Celery("bgtask_silent", broker=f"redis://127.0.0.1:{port}/0")
    return CeleryBackend(app, tasks=DECLARED)


BACKENDS: dict[str, Callable[[int], Backend]] = {"rq": rq_backend, "celery": celery_backend}


def timed_close(app: BackgroundTaskMiddleware) -> float:
    """One request; how long its close() took (the server's wait)."""
    call = Call(app)
    call.body()
    started = time.monotonic()
    call.close()
    return time.monotonic() - started


@pytest.mark.parametrize("engine", ["rq", "celery"])
def test_close_returns_within_the_deadline_when_the_broker_never_answers(
    engine: str, silent: SilentServer, tmp_path: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """0.5 s by default, then the tasks run here, in order, after a WARNING naming them."""
    events = str(tmp_path / "events.jsonl")
    backend = BACKENDS[engine](silent.port)
    app = BackgroundTaskMiddleware(
        queueing(BackgroundTask(record, events, "a"), BackgroundTask(record, events, "b")),
        backend=backend,
    )
    elapsed = timed_close(app)
    assert 0.4 < elapsed < 1.0
    assert tags_run(tmp_path / "events.jsonl") == ["a", "b"]
    (warning,) = [r for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert "could not enqueue 2 background task(s)" in warning.getMessage()
    assert "(HandoffTimeout: no answer within 0.5 s)" in warning.getMessage()
    assert warning.getMessage().endswith(
        "tests.apps.remote_tasks.record, tests.apps.remote_tasks.record"
    )
    assert silent.connections() >= 1  # it did try


def test_while_a_handoff_is_stuck_later_requests_run_their_tasks_here_at_once(
    silent: SilentServer, tmp_path: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """No new stuck thread per request: the next ones fall back at once, warning once."""
    events = str(tmp_path / "events.jsonl")
    backend = rq_backend(silent.port)
    apps = [
        BackgroundTaskMiddleware(queueing(BackgroundTask(record, events, tag)), backend=backend)
        for tag in "abc"
    ]
    first = timed_close(apps[0])
    later = [timed_close(app) for app in apps[1:]]
    assert first > 0.4
    assert all(elapsed < 0.1 for elapsed in later), later
    assert tags_run(tmp_path / "events.jsonl") == ["a", "b", "c"]
    assert backend._handoff.stuck() == 1
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the deadline, then one "still stuck" (rate-limited)
    assert "HandoffBusy: 1 earlier hand-off(s) still stuck" in warnings[1]


def test_the_timeout_is_a_keyword_of_both_backends(silent: SilentServer) -> None:
    """handoff_timeout=...: a number of seconds above zero."""
    queue = Queue("bgtask-silent", connection=Redis.from_url(f"redis://127.0.0.1:{silent.port}"))
    assert RQBackend(queue, handoff_timeout=0.2).handoff_timeout == 0.2
    app = Celery("bgtask_silent", broker=f"redis://127.0.0.1:{silent.port}/0")
    assert CeleryBackend(app, handoff_timeout=2).handoff_timeout == 2.0
    for wrong in (0, -1, float("inf")):
        with pytest.raises(ValueError, match="handoff_timeout must be a number of seconds"):
            RQBackend(queue, handoff_timeout=wrong)


def test_a_handoff_past_its_deadline_while_connecting_never_sends() -> None:
    """NOT_SENT at the deadline; when the connection comes at last, nothing is sent."""
    connected, sent = threading.Event(), threading.Event()

    def phases() -> Generator[None, None, None]:
        connected.wait(10)
        yield
        sent.set()

    handoff = Handoff(0.05)
    outcome, error = handoff.run(phases)
    assert (outcome, type(error)) == (NOT_SENT, HandoffTimeout)
    assert handoff.stuck() == 1
    connected.set()
    wait_for(lambda: handoff.stuck() == 0, what="the stuck helper to end")
    assert not sent.is_set()


def test_a_handoff_past_its_deadline_while_sending_is_unknown() -> None:
    """The job may still arrive: UNKNOWN, never NOT_SENT."""
    release = threading.Event()

    def phases() -> Generator[None, None, None]:
        yield
        release.wait(10)

    handoff = Handoff(0.05)
    outcome, error = handoff.run(phases)
    assert (outcome, type(error)) == (UNKNOWN, HandoffTimeout)
    release.set()
    wait_for(lambda: handoff.stuck() == 0, what="the stuck helper to end")
    assert handoff.run(phases) == (SENT, None)


def test_a_helper_thread_is_reused_by_the_next_handoff() -> None:
    """A thread start per request costs more than the hand-off's two lock switches."""
    threads: list[int] = []

    def phases() -> Generator[None, None, None]:
        yield
        threads.append(threading.get_ident())

    handoff = Handoff(1.0)
    assert handoff.run(phases) == handoff.run(phases) == (SENT, None)
    assert threads[0] == threads[1] != threading.get_ident()


def test_a_stuck_handoff_refuses_the_next_one_without_trying() -> None:
    """HandoffBusy, nothing run, until the stuck one ends."""
    release, tried = threading.Event(), []

    def stuck() -> Generator[None, None, None]:
        yield
        release.wait(10)

    def other() -> Generator[None, None, None]:
        tried.append(True)
        yield

    handoff = Handoff(0.05)
    assert handoff.run(stuck)[0] == UNKNOWN
    outcome, error = handoff.run(other)
    assert (outcome, type(error), tried) == (NOT_SENT, HandoffBusy, [])
    release.set()
    wait_for(lambda: handoff.stuck() == 0, what="the stuck helper to end")
    assert handoff.run(other) == (SENT, None)


GEVENT_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import json, sys, time, gevent
from redis import Redis
from rq import Queue
from bgtask import BackgroundTask, BackgroundTaskMiddleware
from bgtask.rq import RQBackend
from tests.helpers.deployments import queueing
from tests.apps.remote_tasks import record
from tests.helpers.wsgi import Call

events = sys.argv[2]
queue = Queue("bgtask-silent", connection=Redis.from_url(f"redis://127.0.0.1:{sys.argv[1]}/0"))
tasks = queueing(BackgroundTask(record, events, "a"))
app = BackgroundTaskMiddleware(tasks, backend=RQBackend(queue))
ticks = []
def ticker():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)
other = gevent.spawn(ticker)
call = Call(app)
call.body()
started = time.monotonic()
call.close()
elapsed = time.monotonic() - started
other.kill()
print(json.dumps({"elapsed": elapsed, "ticks": len([t for t in ticks if t >= started])}))
"""


@pytest.mark.slow
def test_under_gevent_the_deadline_holds_and_other_greenlets_keep_running(
    silent: SilentServer, tmp_path: Path
) -> None:
    """Monkey-patched: the send runs in the greenlet under gevent.Timeout, the hub runs on."""
    events = tmp_path / "events.jsonl"
    result = run_python(GEVENT_SCRIPT, str(silent.port), str(events))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert 0.4 < report["elapsed"] < 1.0
    assert report["ticks"] >= 10  # another greenlet ran while close() waited
    assert tags_run(events) == ["a"]
    assert "HandoffTimeout: no answer within 0.5 s" in result.stderr
