"""What the RQ and Celery tests share: the services, the worker processes, the requests.

Workers are subprocesses in a session of their own, ready once their log says so, and
stopped by PID (SIGTERM, then SIGKILL of their process group after a deadline), so a hang
fails the test instead of stalling it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from ..apps.remote_tasks import read_events
from .servers import DEADLINE, ROOT, Server, spawn, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path


def require_service(host: str, port: int, what: str, how: str) -> None:
    """Skip the test unless something listens on ``host:port``, saying how to start it."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        pytest.skip(f"{what} is not reachable at {host}:{port}; start it with: {how}")


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """An engine's worker in a subprocess, ready once ``ready`` appears in its log.

    Start several, then ``wait_ready()`` on each: they boot in parallel.
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        ready: str,
        env: dict[str, str],
        cwd: Path = ROOT,
    ) -> None:
        self.log_path = log_path
        self.ready = ready
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = spawn(command, self._log, env, own_session=True, cwd=cwd)

    def wait_ready(self) -> None:
        wait_for(self._ready, what=f"the worker to be ready (log: {self.log_path})")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            msg = f"the worker exited with {self.process.returncode}:\n{self.log()}"
            raise RuntimeError(msg)
        return self.ready in self.log()

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM); ``stop()`` waits for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM (a warm shutdown), wait up to ``timeout``, then SIGKILL its group."""
        if self._log.closed:
            return
        if self.process.poll() is None:
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Children it started (RQ's scheduler) go too; the group is ours, by its id.
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(DEADLINE)
        self._log.close()


def post(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` as JSON; return the JSON answer (a new connection per call)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
    try:
        connection.request(
            "POST", path, json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status == 200, data
    answer: dict[str, Any] = json.loads(data)
    return answer


def tasks_run(events: Path) -> list[dict[str, Any]]:
    """The ``task`` events so far, in the order they were written."""
    return [event for event in read_events(events) if event["event"] == "task"]


def tags_run(events: Path) -> list[str]:
    return [event["tag"] for event in tasks_run(events)]


def has_run(events: Path, *tags: str) -> Callable[[], bool]:
    """A condition for ``wait_for``: every tag in ``tags`` has a ``task`` event."""
    return lambda: set(tags) <= set(tags_run(events))


def event(events: Path, name: str) -> dict[str, Any]:
    """The only event called ``name``."""
    (found,) = [e for e in read_events(events) if e["event"] == name]
    return found
