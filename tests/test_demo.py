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
        # Each request drawn as its phases: the response, then its task that ran.
        assert html.count('class="phase response"') == 5
        assert html.count('class="phase finished"') == 5
        status, fragment = _request(server.url + "/rows")
        assert status == 200
        assert fragment.decode().count('class="request"') == 5


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
        # The failure is in the terminal (gunicorn's output), as in a real deployment.
        wait_for(
            lambda: "RuntimeError: the SMTP server said no" in server.log(),
            what="the failure's traceback in the server's output",
        )
        assert "wsgi_demo.app.flaky_task failed" in server.log()


def test_demo_serves_each_endpoint_offloaded_under_offload(tmp_path: Path) -> None:
    """/offload/...: the same endpoint, its task run by the offload pool, after the response."""
    events = tmp_path / "events.jsonl"
    env = {"BGTASK_DEMO_EVENTS": str(events), "BGTASK_DEMO_TASK_SECONDS": "0.2"}
    with Gunicorn(
        "wsgi_demo.app:app",
        tmp_path / "gunicorn.log",
        args=["--config", "wsgi_demo/gunicorn.conf.py"],
        workers=1,
        env=env,
    ) as server:
        status, _ = _request(f"{server.url}/offload/send-notification/you@example.com", "POST")
        assert status == 200
        wait_for(
            lambda: any(e["event"] == "task finished" for e in _events(events)),
            what="the offloaded task to finish",
        )
        recorded = _events(events)
        assert recorded[0]["path"] == "/offload/send-notification/you@example.com"
        sequence = [e["event"] for e in recorded]
        assert sequence.index("response sent") < sequence.index("task started")
        ran = {e["mode"] for e in recorded if e["event"] in ("task started", "task finished")}
        assert ran == {"offload"}


def test_each_demo_run_has_an_event_log_of_its_own(tmp_path: Path) -> None:
    """Without BGTASK_DEMO_EVENTS, a run starts empty, and its log is gone when it stops."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"BGTASK_DEMO_EVENTS": "", "TMPDIR": str(temporary)}
    args = ["--config", "wsgi_demo/gunicorn.conf.py"]
    with Gunicorn("wsgi_demo.app:app", tmp_path / "one.log", args=args, env=env) as first:
        assert _request(first.url + "/log")[0] == 200
        wait_for(
            lambda: 'class="phase finished"' in _request(first.url + "/rows")[1].decode(),
            what="the first run's task on its timeline",
        )
        [log] = temporary.glob("bgtask-demo-*.jsonl")
        assert log.read_text()
    assert not log.exists()
    with Gunicorn("wsgi_demo.app:app", tmp_path / "two.log", args=args, env=env) as second:
        assert 'id="empty"' in _request(second.url + "/rows")[1].decode()
    assert list(temporary.iterdir()) == []


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
        for path in ["/log", "/offload/log"] * (total // 2):
            assert _request(server.url + path)[0] == 200

        def all_counted() -> bool:
            body = _request(server.url + "/metrics")[1].decode()
            return f'bgtask_tasks_succeeded_total{{task="{TASK}"}} {total}.0' in body

        wait_for(all_counted, what=f"{total} tasks counted in /metrics")
        status, page = _request(server.url + "/rows")
        html = page.decode()
    assert status == 200
    row = html[html.index(f'id="task-{TASK}"') :]
    row = row[: row.index("</tr>")]
    counts = re.findall(r'<td class="count">(\d+)</td>', row)
    assert counts[:3] == [str(total)] * 3  # queued, started, succeeded
    assert " ms</td>" in row  # the mean wait after the response
