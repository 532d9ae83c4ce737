"""What a real client sees over a real socket: gunicorn sync, gthread, gevent; Werkzeug.

Each test starts its server in a subprocess on 127.0.0.1 and reads what the tasks did
from an events file, waiting with deadlines. The only timing assertions are orderings
that hold by a wide margin (a response in milliseconds versus a task of a second).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

from .helpers.servers import DEADLINE, Gunicorn, Server, WerkzeugServer, wait_for
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


def serve(
    tmp_path: Path, events_file: Path, server: str, *, workers: int = 1, **options: Any
) -> Server:
    env = {"BGTASK_TEST_EVENTS": str(events_file), **options.pop("env", {})}
    if server == "werkzeug":
        return WerkzeugServer(tmp_path / "server.log", env=env)
    return Gunicorn(
        "tests.apps.server_app:app",
        tmp_path / "server.log",
        worker_class=server,
        workers=workers,
        env=env,
        **options,
    )


# -- 1. the response comes first -------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("shape", ["cl", "stream"])
@pytest.mark.parametrize("server_kind", [*WORKERS, "werkzeug"])
def test_client_has_the_whole_response_before_a_one_second_task_ends(
    tmp_path: Path, events_file: Path, server_kind: str, shape: str, kind: str
) -> None:
    """Content-Length and chunked bodies, sync and async tasks: the body first, then the task."""
    with serve(tmp_path, events_file, server_kind) as server:
        response, body = get(server, f"/{shape}?tag=t1&task={kind}&seconds=1")
        # The client holds the complete body (http.client read the Content-Length or the
        # chunked terminator); the task, which takes 1 s, has not ended.
        assert response.status == 200
        assert body == (b"ok t1" if shape == "cl" else b"chunk 0\nchunk 1\nchunk 2\n")
        if shape == "stream" and server_kind != "werkzeug":
            assert response.getheader("Transfer-Encoding") == "chunked"
        assert not has_event(events_file, "end", "t1")()
        wait_for(has_event(events_file, "end", "t1"), what="the task to end")


# -- 2. a failing task never breaks the connection -------------------------------------


@pytest.mark.parametrize("server_kind", KEEP_ALIVE_WORKERS)
def test_failing_task_does_not_break_keep_alive(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """A request pipelined behind one whose task fails is still answered, on the same socket."""
    with serve(tmp_path, events_file, server_kind) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        request = "GET /cl?tag={tag}&task={task} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        # Both requests are sent at once: the second waits on the connection while the
        # first one's failing task runs in close().
        client.sendall(
            request.format(tag="a", task="failing").encode()
            + request.format(tag="b", task="sync").encode()
        )
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 2 or not received.endswith(b"ok b"):
            chunk = client.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
        client.close()
        wait_for(has_event(events_file, "end", "b"), what="the second request's task")
        assert "this task fails on purpose" in server.log()
        assert "Error handling request" not in server.log()


@pytest.mark.parametrize(
    ("server_kind", "error"),
    [
        (server_kind, error)
        for server_kind in WORKERS
        for error in ["KeyboardInterrupt", "SystemExit", "CustomStop"]
    ]
    + [("gevent", "GeventTimeout")],
)
def test_a_task_raising_a_base_exception_breaks_no_response_and_no_worker(
    tmp_path: Path, events_file: Path, server_kind: str, error: str
) -> None:
    """KeyboardInterrupt, SystemExit, gevent.Timeout, a custom BaseException from a task: each
    request gets one response (no second 500), keep-alive holds, the worker lives on."""
    with serve(tmp_path, events_file, server_kind) as server:
        request = "GET /cl?tag={tag}&task={task}&error={error} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        first = request.format(tag="a", task="raising", error=error).encode()
        second = request.format(tag="b", task="sync", error="-").encode()
        client = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        if server_kind == "sync":
            # The sync worker closes every connection: one request each, read to EOF.
            client.sendall(first)
            received = _read_to_eof(client)
            client = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
            client.sendall(second)
            received += _read_to_eof(client)
        else:
            client.sendall(first + second)  # the second waits while the first's task raises
            received = b""
            while not received.endswith(b"ok b"):
                chunk = client.recv(65536)
                assert chunk, f"connection closed after {received!r}"
                received += chunk
            client.close()
        wait_for(has_event(events_file, "end", "b"), what="the second request's task")
        assert received.count(b"HTTP/1.1 ") == 2, received
        assert received.count(b"HTTP/1.1 200 OK") == 2, received
        log = server.log()
        assert "raising_task failed" in log
        assert "Error handling request" not in log
        assert "Worker exiting" not in log
        assert log.count("Booting worker") == 1
    pids = {e["pid"] for e in read_events(events_file)}
    assert len(pids) == 1, "the same worker served both requests"


def _read_to_eof(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    client.close()
    return received


# -- 3. nothing lost, nothing duplicated, nothing crossed under load -------------------


@pytest.mark.parametrize("server_kind", KEEP_ALIVE_WORKERS)
def test_load_runs_every_task_exactly_once_in_order_with_its_own_data(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """2,000 requests, 16 clients, 2 workers: each id's sync then async task, once, uncrossed."""
    requests_total, clients = 2000, 16
    with serve(tmp_path, events_file, server_kind, workers=2) as server:
        send_load(server, events_file, requests_total, clients)
    assert_each_request_ran_its_tasks_once_in_order(events_file, requests_total)


# -- 4. graceful shutdown lets the tasks finish ----------------------------------------


@pytest.mark.parametrize("server_kind", WORKERS)
def test_sigterm_after_the_responses_lets_two_second_tasks_finish(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """SIGTERM while sync and async tasks of 2 s run: every task ends before the worker exits."""
    with serve(tmp_path, events_file, server_kind) as server:
        tags = ["s1", "a1"] if server_kind == "sync" else ["s1", "a1", "s2", "a2"]
        for tag in tags:
            kind = "sync" if tag.startswith("s") else "async"
            response, _ = get(server, f"/cl?tag={tag}&task={kind}&seconds=2")
            assert response.status == 200
            if server_kind == "sync":
                break  # the sync worker is busy with the first task until it ends
        started = tags[:1] if server_kind == "sync" else tags
        for tag in started:
            wait_for(has_event(events_file, "start", tag), what=f"task {tag} to start")
        os.kill(server.pid, signal.SIGTERM)
        assert server.stop(timeout=DEADLINE) == 0
    for tag in started:
        assert has_event(events_file, "end", tag)(), f"task {tag} was cut at shutdown"


@pytest.mark.parametrize("server_kind", WORKERS)
def test_with_the_hook_a_task_that_outlives_graceful_timeout_is_named_before_the_kill(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """bgtask.gunicorn's hook, --graceful-timeout 3, a 30 s inline task, SIGTERM: an ERROR
    names the task before the master's SIGKILL ends the worker."""
    args = ["--config", "tests/apps/gunicorn_heartbeat_conf.py", "--graceful-timeout", "3"]
    with serve(tmp_path, events_file, server_kind, args=args) as server:
        response, _ = get(server, "/cl?tag=long&task=sync&seconds=30")
        assert response.status == 200
        wait_for(has_event(events_file, "start", "long"), what="the long task to start")
        os.kill(server.pid, signal.SIGTERM)
        wait_for(lambda: "graceful timeout" in server.log(), what="bgtask's line")
        server.stop(timeout=DEADLINE)
        log = server.log()
    [line] = [line for line in log.splitlines() if "graceful timeout" in line]
    assert line.endswith(
        "background task tests.apps.server_app.sync_task cut: gunicorn's graceful timeout (3 s) "
        "ends in a moment while it ran"
    )
    assert not has_event(events_file, "end", "long")()


# -- 5. --preload: every forked worker runs async tasks ---------------------------------


def test_preload_async_tasks_run_in_every_forked_worker(tmp_path: Path, events_file: Path) -> None:
    """The master started a loop before forking; each worker uses a loop of its own."""
    with serve(
        tmp_path,
        events_file,
        "gthread",
        workers=2,
        args=["--preload"],
        env={"BGTASK_TEST_ASYNC_AT_IMPORT": "1"},
    ) as server:
        worker_pids: set[int] = set()
        for n in range(200):
            get(server, f"/cl?tag=p{n}&task=async")
            wait_for(has_event(events_file, "end", f"p{n}"), what=f"async task p{n}")
            worker_pids = {e["pid"] for e in read_events(events_file) if e["tag"].startswith("p")}
            if len(worker_pids) == 2:
                break
        assert len(worker_pids) == 2, "both workers ran async tasks"
    master = {e["pid"] for e in read_events(events_file) if e["tag"] == "import"}
    assert master == {server.pid}
    assert not worker_pids & master


# -- 6. disconnect mid-stream and HEAD run the tasks ------------------------------------


@pytest.mark.parametrize("server_kind", WORKERS)
def test_head_request_runs_the_tasks(tmp_path: Path, events_file: Path, server_kind: str) -> None:
    """HEAD: gunicorn iterates and discards the body, then closes: the tasks run."""
    with serve(tmp_path, events_file, server_kind) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        connection.request("HEAD", "/cl?tag=h&task=sync,async")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == b""
        connection.close()
        wait_for(has_event(events_file, "end", "h"), what="the HEAD request's tasks")


@pytest.mark.parametrize("server_kind", WORKERS)
def test_client_disconnect_mid_stream_runs_the_tasks(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """The client resets the connection during a long stream: the tasks still run."""
    with serve(tmp_path, events_file, server_kind) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        client.sendall(
            b"GET /stream?tag=d&task=sync,async&chunks=200000 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        received = b""
        while b"chunk 1\n" not in received:
            received += client.recv(65536)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        wait_for(has_event(events_file, "end", "d"), what="the disconnected request's tasks")
        assert sum(e["tag"] == "d" and e["event"] == "end" for e in read_events(events_file)) == 2


# -- 7. sendfile survives ---------------------------------------------------------------


def test_file_wrapper_response_keeps_sendfile_on_the_sync_worker(
    tmp_path: Path, events_file: Path
) -> None:
    """A wsgi.file_wrapper body is sent with sendfile under the middleware, and its task runs."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(1 << 20))
    with serve(tmp_path, events_file, "sync", env={"BGTASK_TEST_COUNT_SENDFILE": "1"}) as server:
        response, body = get(server, f"/file?tag=f&task=sync&path={payload}")
        assert response.status == 200
        assert body == payload.read_bytes()
        wait_for(has_event(events_file, "end", "f"), what="the file response's task")
    assert any(e["event"] == "sendfile" for e in read_events(events_file))


# -- 8. the sync worker's timeout applies to tasks --------------------------------------


def test_sync_worker_timeout_kills_a_task_longer_than_it(tmp_path: Path, events_file: Path) -> None:
    """--timeout 2 and a 5 s task: WORKER TIMEOUT, the task is cut, a new worker serves."""
    with serve(tmp_path, events_file, "sync", args=["--timeout", "2"]) as server:
        response, _ = get(server, "/cl?tag=long&task=sync&seconds=5")
        assert response.status == 200
        wait_for(lambda: "WORKER TIMEOUT" in server.log(), what="gunicorn's worker timeout")
        wait_for(lambda: server.log().count("Booting worker") >= 2, what="a new worker")
        response, _ = get(server, "/cl?tag=after&task=sync")
        assert response.status == 200
        wait_for(has_event(events_file, "end", "after"), what="the next request's task")
    assert not has_event(events_file, "end", "long")()


@pytest.mark.parametrize("server_kind", KEEP_ALIVE_WORKERS)
def test_threaded_workers_finish_a_task_longer_than_the_timeout(
    tmp_path: Path, events_file: Path, server_kind: str
) -> None:
    """gthread and gevent keep their heartbeat: a 4 s task outlives --timeout 2."""
    with serve(tmp_path, events_file, server_kind, args=["--timeout", "2"]) as server:
        response, _ = get(server, "/cl?tag=long&task=sync&seconds=4")
        assert response.status == 200
        wait_for(has_event(events_file, "end", "long"), what="the long task to end")
        assert "WORKER TIMEOUT" not in server.log()
