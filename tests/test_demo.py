"""The demo under real gunicorn (gthread): the timeline shows responses before tasks."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest

from .helpers.servers import Gunicorn, lines, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

#: The demo's /log task.
TASK = "wsgi_demo.app.write_log_sync"


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def _request(url: str, method: str = "GET") -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
    try:
        connection.request(method, parts.path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_demo_timeline_shows_each_response_before_its_tasks(tmp_path: Path) -> None:
    """Under gunicorn, 'response sent' precedes 'task started' and the page shows both."""
    events = tmp_path / "events.jsonl"
    env = {"BGTASK_DEMO_EVENTS": str(events), "BGTASK_DEMO_TASK_SECONDS": "0.2"}
    with Gunicorn(
        "wsgi_demo.app:app",
        tmp_path / "gunicorn.log",
        args=["--config", "wsgi_demo/gunicorn.conf.py"],
        workers=2,
        env=env,
    ) as server:
        status, body = _request(f"{server.url}/send-notification/you@example.com", "POST")
        assert status == 200
        assert json.loads(body) == {"message": "Notification sent in the background"}
        for path in ("/send-notification", "/log", "/background-test/signup", "/register"):
            assert _request(server.url + path, "POST" if "signup" in path else "GET")[0] == 200

        def all_finished() -> bool:
            finished: int = sum(e["event"] == "task finished" for e in _events(events))
            return finished >= 5

        wait_for(all_finished, what="the five demo tasks to finish")
        by_request: dict[str, list[str]] = {}
        for event in _events(events):
            by_request.setdefault(event["request"], []).append(event["event"])
        assert len(by_request) == 5
        for sequence in by_request.values():
            assert sequence[0] == "request received"
            assert sequence.index("response sent") < sequence.index("task started")
            assert sequence.index("task queued") < sequence.index("response sent")
            assert sequence[-1] == "task finished"

        status, page = _request(server.url + "/")
        html = page.decode()
        assert status == 200
        for rid in by_request:
            assert f"request-{rid}" in html
        for name in ("request received", "task queued", "response sent", "task finished"):
            assert f"<b>{name}</b>" in html


def test_demo_records_a_failed_task_and_the_one_it_skipped(tmp_path: Path) -> None:
    """/fail: the failing task is recorded as failed, the next one as skipped."""
    events = tmp_path / "events.jsonl"
    with Gunicorn(
        "wsgi_demo.app:app",
        tmp_path / "gunicorn.log",
        args=["--config", "wsgi_demo/gunicorn.conf.py"],
        workers=1,
        env={"BGTASK_DEMO_EVENTS": str(events)},
    ) as server:
        assert _request(server.url + "/fail")[0] == 200
        wait_for(
            lambda: any(e["event"] == "task skipped" for e in _events(events)),
            what="the skipped task to be recorded",
        )
        sequence = [e["event"] for e in _events(events)]
        assert sequence.index("response sent") < sequence.index("task failed")
        assert sequence.index("task failed") < sequence.index("task skipped")
        assert "write_log_sync" in _events(events)[-1]["detail"]
        assert _request(server.url + "/fail")[0] == 200  # the worker is fine


def test_demo_page_and_metrics_count_every_workers_tasks(tmp_path: Path) -> None:
    """Two workers, one set of counts: /metrics and the page's table sum both workers
    (the demo's gunicorn.conf.py sets Prometheus' multiprocess mode)."""
    events = tmp_path / "events.jsonl"
    env = {"BGTASK_DEMO_EVENTS": str(events), "BGTASK_DEMO_TASK_SECONDS": "0"}
    with Gunicorn(
        "wsgi_demo.app:app",
        tmp_path / "gunicorn.log",
        args=["--config", "wsgi_demo/gunicorn.conf.py"],
        workers=2,
        env=env,
    ) as server:
        total = 8
        for _ in range(total):
            assert _request(server.url + "/log")[0] == 200

        def all_counted() -> bool:
            body = _request(server.url + "/metrics")[1].decode()
            return f'bgtask_tasks_succeeded_total{{task="{TASK}"}} {total}.0' in body

        wait_for(all_counted, what=f"{total} tasks counted in /metrics")
        pids = {
            e["request"].split("-")[0] for e in _events(events) if e["event"] == "task finished"
        }
        status, page = _request(server.url + "/")
        html = page.decode()
    assert status == 200
    row = html[html.index(f'id="task-{TASK}"') :]
    row = row[: row.index("</tr>")]
    counts = re.findall(r'<td class="count">(\d+)</td>', row)
    assert counts[:3] == [str(total)] * 3  # queued, started, succeeded
    assert " ms</td>" in row  # the mean wait after the response
    assert len(pids) >= 1
