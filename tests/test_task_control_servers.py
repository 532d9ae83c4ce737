"""Deadlines and retries under real gunicorn workers (sync, gthread, gevent)."""

from __future__ import annotations

import http.client
import time
from typing import TYPE_CHECKING

import pytest

from .helpers.servers import DEADLINE, Gunicorn, wait_for
from .helpers.serving import KEEP_ALIVE_WORKERS, WORKERS, get, has_event, read_events

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def serve(tmp_path: Path, events_file: Path, worker_class: str) -> Gunicorn:
    return Gunicorn(
        "tests.apps.server_app:app",
        tmp_path / "server.log",
        worker_class=worker_class,
        env={"BGTASK_TEST_EVENTS": str(events_file)},
    )


@pytest.mark.parametrize("worker_class", KEEP_ALIVE_WORKERS)
def test_a_retry_with_a_backoff_does_not_delay_the_next_keep_alive_request(
    tmp_path: Path, events_file: Path, worker_class: str
) -> None:
    """The first attempt fails inline; its 1 s backoff waits off the connection's thread."""
    with serve(tmp_path, events_file, worker_class) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        connection.request("GET", "/cl?tag=a&task=flaky")
        assert connection.getresponse().read() == b"ok a"
        wait_for(has_event(events_file, "start", "a"), what="the first attempt")
        started = time.monotonic()
        connection.request("GET", "/cl?tag=b")  # the same keep-alive connection
        assert connection.getresponse().read() == b"ok b"
        answered = time.monotonic() - started
        connection.close()
        wait_for(has_event(events_file, "end", "a"), what="the retry to succeed")
        attempts = [e for e in read_events(events_file) if e["tag"] == "a"]
        assert [e["attempt"] for e in attempts] == [1, 2, 2]
        assert attempts[1]["time"] - attempts[0]["time"] >= 0.95  # the backoff was waited
        assert answered < 0.5  # ... but not by the next request
        assert "flaky_task failed, retrying: attempt 2 of 2 in 1 s" in server.log()


@pytest.mark.parametrize("worker_class", WORKERS)
def test_a_deadline_cancels_an_async_task(
    tmp_path: Path, events_file: Path, worker_class: str
) -> None:
    """A 30 s async task under a 0.3 s deadline: cancelled, logged as timed out, named."""
    with serve(tmp_path, events_file, worker_class) as server:
        _, body = get(server, "/cl?tag=d&task=deadline&seconds=30")
        assert body == b"ok d"
        wait_for(has_event(events_file, "cancelled", "d"), what="the task to be cancelled")
        wait_for(lambda: "timed out" in server.log(), what="the time-out in the log")
        assert "deadline_task timed out: its deadline of 0.3 s passed; it was cancelled" in (
            server.log()
        )
        assert not has_event(events_file, "end", "d")()
        assert get(server, "/cl?tag=after")[1] == b"ok after"  # the worker is fine
