"""Real servers for tests: gunicorn in a subprocess on an ephemeral 127.0.0.1 port.

Started with a deadline for readiness, stopped by PID (SIGTERM, then SIGKILL after a
deadline), with the whole log kept for assertions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 20.0
_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def wait_for(condition: Callable[[], bool], *, timeout: float = DEADLINE, what: str) -> None:
    """Poll ``condition`` (a file, a log, a socket) until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout} s waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(0.02)


def spawn(
    command: Sequence[str],
    log: IO[bytes],
    env: dict[str, str],
    *,
    own_session: bool = False,
    cwd: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in the repository (or ``cwd``, importable first), its output to
    ``log``, the tests importable.

    ``own_session``: in a process group of its own, so its children can be killed with it.
    """
    path = str(ROOT) if cwd == ROOT else os.pathsep.join([str(cwd), str(ROOT)])
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path},
        start_new_session=own_session,
    )


class Server:
    """A server subprocess on an ephemeral 127.0.0.1 port, ready once its log says so."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = spawn(command, self._log, env or {}, cwd=cwd)
        self.port = 0
        try:
            wait_for(self._listening, what=f"the server to listen (log: {log_path})")
            wait_for(
                lambda: self.log().count("Booting worker") >= workers,
                what=f"{workers} worker(s) to boot",
            )
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            msg = f"the server exited with {self.process.returncode}:\n{self.log()}"
            raise RuntimeError(msg)
        match = _LISTENING.search(self.log())
        if match:
            self.port = int(match.group(1))
        return bool(match)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, *, timeout: float = DEADLINE) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DEADLINE)
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Gunicorn(Server):
    """A gunicorn master and its workers, serving ``app`` (``module:variable``)."""

    def __init__(
        self,
        app: str,
        log_path: Path,
        *,
        worker_class: str = "gthread",
        workers: int = 1,
        threads: int = 4,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        command = [
            sys.executable, "-m", "gunicorn",
            *args,
            "--bind", "127.0.0.1:0",
            "--worker-class", worker_class,
            "--workers", str(workers),
            # Several servers may run at once: no shared control socket in $HOME.
            "--no-control-socket",
            "--error-logfile", "-",
        ]  # fmt: skip
        if worker_class == "gthread":
            # Only for gthread: gunicorn turns a "sync" worker with threads into gthread.
            command += ["--threads", str(threads)]
        command.append(app)
        super().__init__(command, log_path, workers=workers, env=env, cwd=cwd)


class WerkzeugServer(Server):
    """Werkzeug's threaded development server, serving ``tests.apps.server_app``."""

    def __init__(self, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        super().__init__([sys.executable, "-m", "tests.apps.werkzeug_server"], log_path, env=env)


def lines(path: Path) -> Iterator[str]:
    """The complete lines of a file being appended to (none if it does not exist yet)."""
    if not path.exists():
        return iter(())
    text = path.read_text()
    return iter(text.splitlines() if text.endswith("\n") else text.splitlines()[:-1])
