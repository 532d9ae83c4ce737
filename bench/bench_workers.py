"""What a 200 ms inline task costs the next request, per gunicorn worker type.

One sequential client, with keep-alive and with a new connection per request; each
configuration is measured against the same server with no task, interleaved in one run.
Prints the median latency and its ratio to the bare request.

    python -m bench.bench_workers
"""

from __future__ import annotations

import http.client
import statistics
import tempfile
import time
from pathlib import Path

from tests.helpers.servers import Gunicorn

ROUNDS = 15
TASK = "task=sync&seconds=0.2"


def _latencies(port: int, query: str, *, keep_alive: bool) -> list[float]:
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(ROUNDS):
        if not keep_alive:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        connection.request("GET", f"/cl?{query}")
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies


def main() -> None:
    print(f"{'worker':8} {'connection':11} {'bare p50 ms':>12} {'task p50 ms':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        for worker in ("sync", "gthread", "gevent"):
            with Gunicorn("tests.apps.server_app:app", Path(scratch) / f"{worker}.log",
                          worker_class=worker, workers=1, threads=4) as server:  # fmt: skip
                for keep_alive in (True, False):
                    bare: list[float] = []
                    task: list[float] = []
                    for _ in range(2):  # interleaved, twice
                        bare += _latencies(server.port, "tag=b", keep_alive=keep_alive)
                        task += _latencies(server.port, f"tag=t&{TASK}", keep_alive=keep_alive)
                    b, t = statistics.median(bare) * 1000, statistics.median(task) * 1000
                    kind = "keep-alive" if keep_alive else "new"
                    print(f"{worker:8} {kind:11} {b:12.2f} {t:12.2f} {t / b:7.1f}")


if __name__ == "__main__":
    main()
