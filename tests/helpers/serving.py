"""Talking to ``tests.apps.server_app`` under a real server: requests, load, and what ran.

Its tasks append JSON lines to an events file; these helpers read them, wait on them with a
deadline, and check the load tests' promise: every request's two tasks, once, in order,
with that request's own data.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .servers import DEADLINE, lines, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .servers import Server


#: gunicorn's worker types under test.
WORKERS = ["sync", "gthread", "gevent"]
#: The ones that keep connections alive (the sync worker closes every connection).
KEEP_ALIVE_WORKERS = ["gthread", "gevent"]


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def has_event(path: Path, event: str, tag: str) -> Callable[[], bool]:
    return lambda: any(e["event"] == event and e["tag"] == tag for e in read_events(path))


def get(server: Server, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def send_load(server: Server, events: Path, requests_total: int, clients: int) -> None:
    """``requests_total`` requests from ``clients`` threads, each queuing a sync and an async
    task tagged with its id; returns once every task has ended."""
    errors: list[BaseException] = []

    def client(first: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
        try:
            for i, n in enumerate(range(first, requests_total, clients)):
                if i % 20 == 0:
                    # A new connection now and then: one worker accepting every keep-alive
                    # connection of the burst would leave the other idle.
                    connection.close()
                connection.request("GET", f"/cl?tag=r{n}&task=sync,async")
                response = connection.getresponse()
                assert response.read() == f"ok r{n}".encode()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 3)
    assert errors == []
    wait_for(
        lambda: sum(e["event"] == "end" for e in read_events(events)) >= 2 * requests_total,
        timeout=DEADLINE * 3,
        what="every task to end",
    )


def assert_each_request_ran_its_tasks_once_in_order(events: Path, requests_total: int) -> None:
    """Every id: its sync task then its async one, once each, in its own context; both
    workers served."""
    by_tag: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    pids = set()
    for event in read_events(events):
        by_tag[event["tag"]].append((event["event"], event["kind"], event["ctx"]))
        pids.add(event["pid"])
    assert len(by_tag) == requests_total
    for tag, sequence in by_tag.items():
        assert sequence == [
            ("start", "sync", tag),
            ("end", "sync", tag),
            ("start", "async", tag),
            ("end", "async", tag),
        ], tag
    assert len(pids) == 2, "both workers served requests"
