"""Process-level tests: scripts in a fresh interpreter, and forked children, with deadlines.

``run_python`` runs a script in a subprocess bounded by a timeout. In the fork scripts a
child writes its report to a pipe and exits; ``read_child`` reads to EOF, killing a child
that hangs instead of waiting for it, and reaps it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
#: The most any one script may take, hangs included.
SUBPROCESS_TIMEOUT = 30.0


def run_python(
    script: str,
    *args: str,
    options: Sequence[str] = ("-W", "error"),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (dedented) with this interpreter in a fresh process, with a timeout.

    ``BGTASK_EXIT_TIMEOUT`` is not inherited: a script sets its own.
    """
    environ = {key: value for key, value in os.environ.items() if key != "BGTASK_EXIT_TIMEOUT"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, *options, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        env=environ,
        check=False,
    )


def read_child(pid: int, read_end: int, deadline: float) -> tuple[str, int]:
    """What the child wrote before it exited, and its exit code (a hung child is killed)."""
    output = b""
    until = time.monotonic() + deadline
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
            os.kill(pid, signal.SIGKILL)  # the child hangs: fail, do not wait for it
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        output += chunk
    return output.decode(), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
