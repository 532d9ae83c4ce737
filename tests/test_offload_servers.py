"""Offload mode under real gunicorn workers: answers at once, tasks run once, drain at exit.

Each test starts gunicorn in a subprocess on 127.0.0.1 serving ``tests.apps.server_app`` with
offload switched on by its environment, and reads what the tasks did from the events file,
waiting with deadlines. The only timing assertions are orderings that hold by a wide margin.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pytest

from .helpers.servers import DEADLINE, Gunicorn, wait_for
from .helpers.serving import (
    KEEP_ALIVE_WORKERS,
    WORKERS,
    assert_each_request_ran_its_tasks_once_in_order,
    get,
    has_event,
    read_events,
    send_load,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

OFFLOAD = {"BGTASK_TEST_OFFLOAD": "1"}
FULL = "offload pool full"


def serve(
    tmp_path: Path,
    events_file: Path,
    worker_class: str,
    *,
    env: dict[str, str] | None = None,
    **options: Any,
) -> Gunicorn:
    """gunicorn serving ``tests.apps.server_app:app``, offloaded unless ``env`` says otherwise."""
    return Gunicorn(
        "tests.apps.server_app:app",
        tmp_path / "server.log",
        worker_class=worker_class,
        env={"BGTASK_TEST_EVENTS": str(events_file), **(OFFLOAD if env is None else env)},
        **options,
    )


def ended(events_file: Path, tags: list[str]) -> bool:
    return all(has_event(events_file, "end", tag)() for tag in tags)


# -- (a) the sync worker's timeout no longer applies to tasks ------------------------------


def test_sync_worker_answers_at_once_while_offloaded_tasks_outlive_its_timeout(
    tmp_path: Path, events_file: Path
) -> None:
    """--timeout 2, three requests with 4 s tasks: all answered before the first task ends."""
    tags = ["t1", "t2", "t3"]
    with serve(tmp_path, events_file, "sync", args=["--timeout", "2"]) as server:
        for tag in tags:
            response, body = get(server, f"/cl?tag={tag}&task=sync&seconds=4")
            assert (response.status, body) == (200, f"ok {tag}".encode())
        # Inline, the second request would wait for the first task (and get the worker
        # killed): all three answers came while the first task is still running.
        assert not has_event(events_file, "end", "t1")()
        wait_for(lambda: ended(events_file, tags), what="the three 4 s tasks to end")
        log = server.log()
    assert "WORKER TIMEOUT" not in log
    assert log.count("Booting worker") == 1, "the worker was never replaced"
    assert len({event["pid"] for event in read_events(events_file)}) == 1


def test_worker_restarted_by_max_requests_finishes_an_offloaded_task_longer_than_timeout(
    tmp_path: Path, events_file: Path
) -> None:
    """--max-requests 1 --timeout 2, a 4 s task: with bgtask's hook, the exiting worker ends it."""
    args = [
        "--config",
        "tests/apps/gunicorn_heartbeat_conf.py",
        "--timeout",
        "2",
        "--max-requests",
        "1",
    ]
    with serve(tmp_path, events_file, "sync", args=args) as server:
        response, _ = get(server, "/cl?tag=long&task=sync&seconds=4")
        assert response.status == 200
        wait_for(
            lambda: has_event(events_file, "end", "long")() or "WORKER TIMEOUT" in server.log(),
            what="the long task to end, or the worker to be killed",
        )
        wait_for(lambda: server.log().count("Booting worker") >= 2, what="the replacement")
        log = server.log()
    assert "WORKER TIMEOUT" not in log
    assert has_event(events_file, "end", "long")()


# -- (b) keep-alive: the next request does not wait for the previous one's tasks -------------


@pytest.mark.parametrize(
    ("server_kind", "offload"),
    [("gthread", True), ("gevent", True), ("gthread", False)],
    ids=["gthread-offload", "gevent-offload", "gthread-inline"],
)
def test_next_request_on_a_keep_alive_connection_does_not_wait_for_offloaded_tasks(
    tmp_path: Path, events_file: Path, server_kind: str, offload: bool
) -> None:
    """Offloaded: the second answer arrives before the first 1 s task ends. Inline: after."""
    env = OFFLOAD if offload else {}
    with serve(tmp_path, events_file, server_kind, env=env) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        connection.request("GET", "/cl?tag=k1&task=sync&seconds=1")
        first = connection.getresponse()
        assert first.read() == b"ok k1"
        sock = connection.sock
        connection.request("GET", "/cl?tag=k2")
        second = connection.getresponse()
        assert second.read() == b"ok k2"
        first_task_ended = has_event(events_file, "end", "k1")()
        assert connection.sock is sock, "both requests went over one connection"
        connection.close()
        wait_for(has_event(events_file, "end", "k1"), what="the first request's task")
    assert first_task_ended is not offload


# -- (c) SIGTERM drains the offloaded tasks --------------------------------------------------


@pytest.mark.parametrize("server_kind", WORKERS)
def test_sigterm_lets_offloaded_two_second_tasks_finish_within_the_graceful_timeout(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """Sync and async 2 s tasks in flight at SIGTERM: all end, the master exits cleanly."""
    graceful_timeout = 10.0
    tags = ["s1", "a1", "s2", "a2"]
    args = ["--graceful-timeout", str(int(graceful_timeout))]
    with serve(tmp_path, events_file, server_kind, args=args) as server:
        for tag in tags:
            kind = "sync" if tag.startswith("s") else "async"
            response, _ = get(server, f"/cl?tag={tag}&task={kind}&seconds=2")
            assert response.status == 200  # even the sync worker: nothing waits for a task
        for tag in tags:
            wait_for(has_event(events_file, "start", tag), what=f"task {tag} to start")
        assert not any(has_event(events_file, "end", tag)() for tag in tags)
        began = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.stop(timeout=DEADLINE) == 0
        elapsed = time.monotonic() - began
        log = server.log()
    assert ended(events_file, tags), f"tasks cut at shutdown:\n{log}"
    assert elapsed < graceful_timeout, f"shutdown took {elapsed:.1f} s"
    assert "SIGKILL" not in log
    assert "exit deadline passed" not in log


# -- (d) nothing lost, nothing duplicated, nothing crossed under load ------------------------


@pytest.mark.parametrize("server_kind", KEEP_ALIVE_WORKERS)
def test_load_runs_every_offloaded_task_exactly_once_in_order_with_its_own_data(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """2,000 requests, 16 clients, 2 workers: each id's sync then async task, once, uncrossed."""
    requests_total, clients = 2000, 16
    with serve(tmp_path, events_file, server_kind, workers=2) as server:
        send_load(server, events_file, requests_total, clients)
        log = server.log()
    assert_each_request_ran_its_tasks_once_in_order(events_file, requests_total)
    assert "Traceback" not in log


# -- (e) a full queue pushes back instead of dropping -----------------------------------------


@pytest.mark.parametrize("server_kind", KEEP_ALIVE_WORKERS)
def test_full_queue_runs_tasks_inline_and_loses_none(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """threads=1, max_pending=2, 20 concurrent requests of 0.2 s tasks: all run once, warned."""
    env = {"BGTASK_TEST_POOL_THREADS": "1", "BGTASK_TEST_MAX_PENDING": "2"}
    tags = [f"q{n}" for n in range(20)]
    with serve(tmp_path, events_file, server_kind, env=env) as server:
        start = threading.Barrier(len(tags), timeout=DEADLINE)
        errors: list[BaseException] = []

        def client(tag: str) -> None:
            try:
                start.wait()
                response, body = get(server, f"/cl?tag={tag}&task=sync&seconds=0.2")
                assert (response.status, body) == (200, f"ok {tag}".encode())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(tag,)) for tag in tags]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert errors == []
        wait_for(lambda: ended(events_file, tags), what="every task to end")
        log = server.log()
    runs = defaultdict(list)
    for event in read_events(events_file):
        runs[event["tag"]].append(event["event"])
    assert runs == {tag: ["start", "end"] for tag in tags}
    assert log.count(FULL) == 1, log


# -- (f) SIGTERM under saturation loses no task of a sent response ---------------------------


@pytest.mark.parametrize("server_kind", WORKERS)
def test_sigterm_under_saturation_with_the_defaults_loses_no_task_of_a_sent_response(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """offload=True, 200 ms tasks, 32 clients, then SIGTERM: every response a client got has
    its task run before the worker exits (the queue held only what the exit drain can run)."""
    answered: list[str] = []
    stop = threading.Event()

    def client(number: int) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            tag = f"c{number}-{n}"
            try:
                response, body = get(server, f"/cl?tag={tag}&task=sync&seconds=0.2")
            except OSError:
                return  # the server stopped listening
            if (response.status, body) == (200, f"ok {tag}".encode()):
                answered.append(tag)

    with serve(tmp_path, events_file, server_kind, workers=2) as server:
        clients = [threading.Thread(target=client, args=(i,)) for i in range(32)]
        for thread in clients:
            thread.start()
        wait_for(lambda: len(answered) >= 1000, timeout=60, what="1,000 answered requests")
        os.kill(server.pid, signal.SIGTERM)
        stop.set()
        for thread in clients:
            thread.join(DEADLINE)
        assert server.stop(timeout=40) == 0
        log = server.log()
    ended_tags = {e["tag"] for e in read_events(events_file) if e["event"] == "end"}
    lost = [tag for tag in answered if tag not in ended_tags]
    assert lost == [], f"{len(lost)} of {len(answered)} answered requests lost their task"
    assert "exit deadline passed" not in log
