"""For the fork tests' subprocess scripts: read what a forked child reports, with a deadline.

The child writes its report to a pipe and exits; the parent reads to EOF, killing a child
that hangs instead of waiting for it, and reaps it.
"""

from __future__ import annotations

import os
import select
import signal
import time


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
