"""End to end at saturation: 32 clients, a 20 ms task per request.

gunicorn, gthread, 2 workers x 8 threads (and Starlette under uvicorn, 2 workers, when
uvicorn is installed); wrk with 32 keep-alive connections, 2-second runs, contenders
interleaved round by round; then the gunicorn contenders with a new connection per
request. Tasks finished are counted, not only requests served, and the backlog (tasks
queued and not finished) is read half-way through each run and at its end.

The offload pool is sized for the load by Little's law: a calibration run of the bare app
gives the requests per second per worker, and

    threads per worker = ceil(1.5 x requests per second per worker x task seconds)

(1.5 for headroom). The default pool (4 per CPU) is measured too.

Targets: inline no worse than Flask's call_on_close; offloaded async and offloaded sync
(sized pool) >= 0.9 of bare throughput, with no growing backlog.
Run with ``python -m bench.bench_server_saturation``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from bench import _server
from bench._common import header, print_table, scaled
from bench._common import verdict as _verdict
from bench._server import (
    Contender,
    Run,
    busiest_share,
    interleaved_loads,
    paired,
    task_contenders,
)

BARE = "Flask bare"
TASK_MS = 20
CONNECTIONS = 32
SECONDS = 2
HEADROOM = 1.5


def pool_size(bare_throughput: float) -> int:
    per_worker = bare_throughput / _server.WORKERS
    return math.ceil(HEADROOM * per_worker * TASK_MS / 1000)


def calibrate(scratch: Path) -> float:
    """Bare requests per second, on a server of its own (the pool is sized before start)."""
    stack = _server.gunicorn(scratch / "calibration", pool_threads=1)
    try:
        stack.warm("/bare")
        runs, _ = interleaved_loads(
            [Contender("bare", stack, "/bare", "bare")],
            rounds=2,
            connections=CONNECTIONS,
            seconds=SECONDS,
            keep_alive=True,
        )
        return max(run.throughput for run in runs["bare"])
    finally:
        stack.server.stop()


def growing(run: Run, threads: int) -> bool:
    """More waiting at the end than half-way, beyond what the pool threads hold in flight."""
    return run.backlog_end > max(1.2 * run.backlog_mid, _server.WORKERS * threads)


def target(label: str, runs: dict[str, list[Run]], threads: int) -> str:
    throughput = paired(runs, label, "Flask bare", "throughput")
    if label == "bgtask inline, sync":
        against = paired(runs, label, "Flask call_on_close, sync", "throughput")
        return f"{against:.3f}x call_on_close (>= 0.97): {_verdict(against >= 0.97)}"
    if label.startswith("bgtask offload sized"):
        grew = any(growing(run, threads) for run in runs[label])
        passed = throughput >= 0.9 and not grew
        backlog = "backlog growing" if grew else "backlog flat"
        return f">= 0.9 of bare, {backlog}: {_verdict(passed)}"
    return ""


def table(listed: list[Contender], runs: dict[str, list[Run]], threads: int) -> None:
    rows = []
    for contender in listed:
        mine = runs[contender.label]
        is_bare = contender.label == contender.bare
        throughput = paired(runs, contender.label, contender.bare, "throughput")
        p50 = paired(runs, contender.label, contender.bare, "p50")
        rows.append(
            [
                contender.label,
                f"{statistics.median(r.throughput for r in mine):.0f}",
                "" if is_bare else f"{throughput:.2f}",
                f"{statistics.median(r.tasks_per_second for r in mine):.0f}",
                f"{statistics.median(r.p50 for r in mine) * 1000:.1f}",
                "" if is_bare else f"{p50:.2f}",
                " ".join(f"{r.backlog_mid}>{r.backlog_end}" for r in mine),
                f"{max(r.drain_seconds for r in mine):.1f}",
                f"{statistics.median(busiest_share(r.split) for r in mine):.0%}",
                sum(r.errors for r in mine),
                target(contender.label, runs, threads) if contender.bare == BARE else "",
            ]
        )
    print_table(
        [
            "contender",
            "req/s",
            "x bare",
            "tasks/s",
            "p50 ms",
            "p50 x bare",
            "backlog mid>end",
            "drain s",
            "busiest worker",
            "errors",
            "target",
        ],
        rows,
    )


def main() -> None:
    header(f"5c. End to end at saturation: {CONNECTIONS} clients, {TASK_MS} ms tasks")
    rounds, new_rounds = scaled(3, 1), scaled(2, 1)
    with _server.scratch_directory() as scratch:
        (Path(scratch) / "calibration").mkdir()
        bare_throughput = calibrate(Path(scratch))
        threads = pool_size(bare_throughput)
        print(
            f"load: {_server.load_generator()}; calibration: bare {bare_throughput:.0f} req/s, "
            f"so the sized pool has ceil({HEADROOM} x {bare_throughput / _server.WORKERS:.0f} "
            f"x {TASK_MS / 1000}) = {threads} threads per worker; default pool: "
            f"{_server.default_pool_threads()}\n"
        )
        started = list(_server.stacks(Path(scratch), pool_threads=threads))
        gunicorn = started[0]
        uvicorn = started[1] if len(started) > 1 else None
        if uvicorn is None:
            print("(uvicorn not installed: Starlette skipped; pip install uvicorn)")
        try:
            listed = task_contenders(
                gunicorn, uvicorn, TASK_MS, offload_label="bgtask offload sized", default_async=True
            )
            for contender in listed:
                contender.stack.warm(contender.path.split("?")[0])
            runs, retried = interleaved_loads(
                listed, rounds=rounds, connections=CONNECTIONS, seconds=SECONDS, keep_alive=True
            )
            # New connections: the gunicorn contenders that have a target, fewer rounds.
            fresh = [c for c in listed if c.bare == BARE and "default" not in c.label]
            new_runs, _ = interleaved_loads(
                fresh, rounds=new_rounds, connections=CONNECTIONS, seconds=SECONDS, keep_alive=False
            )
        finally:
            for stack in started:
                stack.server.stop()
    print("### keep-alive\n")
    table(listed, runs, threads)
    print(
        f"\n{rounds} interleaved rounds of {SECONDS} s; medians of values and of per-round "
        f"ratios; backlog per round. {retried} skewed run(s) were run again.\n"
    )
    print("### new connection per request\n")
    table(fresh, new_runs, threads)
    print(f"\n{new_rounds} interleaved rounds of {SECONDS} s.")


if __name__ == "__main__":
    main()
