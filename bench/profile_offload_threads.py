"""Who pays for an offloaded task: one gunicorn worker's CPU per request, thread by thread.

A diagnostic, not a benchmark (``make bench`` does not run it): one gthread worker (8
threads) under wrk with 16 keep-alive connections for 4 seconds per path, and from
``/proc/<pid>/task/*`` each thread's CPU and context switches divided by the requests
served. The request threads are the eight that look alike; the loop's thread and the
pool's threads are the others.

Run with ``python -m bench.profile_offload_threads [path ...]``; the default paths are
the bare app and the default pool with a 20 ms sync and a 20 ms async task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import _server

PATHS = ["/bare", "/offload-default?task=sync&ms=20", "/offload-default?task=async&ms=20"]
SECONDS = 4


def threads_of(pid: int) -> dict[str, tuple[float, int, int]]:
    """Each thread's CPU seconds, voluntary and involuntary context switches."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue  # a thread that just ended
        switches = dict(line.split(":") for line in status.splitlines() if "ctxt_switches" in line)
        found[tid] = (
            (int(stat[11]) + int(stat[12])) / ticks,
            int(switches["voluntary_ctxt_switches"]),
            int(switches["nonvoluntary_ctxt_switches"]),
        )
    return found


def profile(path: str, scratch: Path, wrk: str) -> None:
    directory = scratch / str(len(list(scratch.iterdir())))
    directory.mkdir()
    stack = _server.gunicorn(directory, pool_threads=1, workers=1)
    try:
        stack.warm(path)
        (worker,) = stack.totals().per_worker
        before = threads_of(worker)
        report = subprocess.run(
            [wrk, "-t2", "-c16", f"-d{SECONDS}s", stack.url + path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = threads_of(worker)
    finally:
        stack.server.stop()
    requests = int(next(line for line in report.splitlines() if "requests in" in line).split()[0])
    rows = []
    for tid, (cpu, voluntary, involuntary) in after.items():
        was = before.get(tid, (0.0, 0, 0))
        rows.append((cpu - was[0], voluntary - was[1], involuntary - was[2]))
    rows.sort(reverse=True)
    total = sum(cpu for cpu, _, _ in rows)
    print(f"\n{path}: {requests / SECONDS:.0f} req/s, {total / requests * 1e6:.0f} us/req")
    for cpu, voluntary, involuntary in rows[:12]:
        print(
            f"  {cpu / requests * 1e6:6.0f} us/req   context switches per request: "
            f"{voluntary / requests:.2f} voluntary, {involuntary / requests:.2f} involuntary"
        )


def main() -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("this diagnostic needs wrk (apt-get install wrk)")
        return
    with _server.scratch_directory() as directory:
        for path in sys.argv[1:] or PATHS:
            profile(path, Path(directory), wrk)


if __name__ == "__main__":
    main()
