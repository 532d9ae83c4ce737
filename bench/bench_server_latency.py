"""End to end, one sequential client and a 200 ms task: what the task costs the next request.

gunicorn, gthread, 2 workers x 8 threads (and Starlette under uvicorn, 2 workers, when
uvicorn is installed). One client sends one request at a time, a new one every 50 ms (or at
once when the last took longer), with keep-alive and with a new connection per request. At
20 requests a second a 200 ms task keeps about 4 threads busy, well within the 16.

Contenders, interleaved round by round: the bare app (no task); Flask's
``call_on_close``; bgtask inline; bgtask offloaded to a pool sized for the load and to the
default pool; sync and async tasks; Starlette's ``BackgroundTasks``.

The figure is each one's p50 divided by its stack's bare p50. Targets: with new
connections, inline within 1.1x of bare; with keep-alive, offloaded within 1.1x of bare
(inline waits for the task: measured). Run with ``python -m bench.bench_server_latency``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import _server
from bench._common import header, print_table, scaled
from bench._common import verdict as _verdict
from bench._server import task_contenders

TASK_MS = 200
INTERVAL = 0.05
POOL_THREADS = 8
LIMIT = 1.1


def target(label: str, keep_alive: bool, ratio: float) -> str:
    if not keep_alive and label == "bgtask inline, sync":
        return f"new connection, inline <= {LIMIT}x: {_verdict(ratio <= LIMIT)}"
    if keep_alive and label.startswith("bgtask offload") and "default" not in label:
        return f"keep-alive, offloaded <= {LIMIT}x: {_verdict(ratio <= LIMIT)}"
    return ""


def main() -> None:
    header(f"5b. End to end, one sequential client, {TASK_MS} ms task: p50 vs bare")
    rounds, requests = scaled(4, 1), scaled(20, 8)
    print(
        f"one client, a request every {INTERVAL * 1000:.0f} ms, {requests} requests per "
        f"contender per round; offload pool {POOL_THREADS} threads per worker\n"
    )
    rows = []
    with _server.scratch_directory() as scratch:
        started = list(_server.stacks(Path(scratch), pool_threads=POOL_THREADS))
        gunicorn = started[0]
        uvicorn = started[1] if len(started) > 1 else None
        if uvicorn is None:
            print("(uvicorn not installed: Starlette skipped; pip install uvicorn)")
        try:
            listed = task_contenders(gunicorn, uvicorn, TASK_MS)
            for contender in listed:
                contender.stack.warm(contender.path.split("?")[0])
            for keep_alive in (False, True):
                latencies: dict[str, list[list[float]]] = {c.label: [] for c in listed}
                for round_index in range(rounds):
                    shift = round_index % len(listed)
                    for contender in listed[shift:] + listed[:shift]:
                        latencies[contender.label].append(
                            _server.sequential(
                                contender.stack,
                                contender.path,
                                requests=requests,
                                interval=INTERVAL,
                                keep_alive=keep_alive,
                            )
                        )
                        contender.stack.wait_drained()
                mode = "keep-alive" if keep_alive else "new connection"
                for contender in listed:
                    mine = latencies[contender.label]
                    bare = latencies[contender.bare]
                    p50 = statistics.median(x for run in mine for x in run)
                    ratio = statistics.median(
                        statistics.median(a) / statistics.median(b)
                        for a, b in zip(mine, bare, strict=True)
                    )
                    is_bare = contender.label == contender.bare
                    rows.append(
                        [
                            mode,
                            contender.label,
                            f"{p50 * 1000:.2f}",
                            "" if is_bare else f"{ratio:.3f}",
                            target(contender.label, keep_alive, ratio),
                        ]
                    )
        finally:
            for stack in started:
                stack.server.stop()
    print_table(["connection", "contender", "p50 ms", "p50 x bare", "target"], rows)
    print(
        f"\n{rounds} interleaved rounds; p50 over all requests, ratio = median of the "
        "per-round ratios. Each contender's tasks drained before the next one ran."
    )


if __name__ == "__main__":
    main()
