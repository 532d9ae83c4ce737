"""End to end at the offload limit: 32 clients, a 20 ms task per request.

gunicorn, gthread, 2 workers x 8 threads, and Starlette under uvicorn (2 workers) when
uvicorn is installed; wrk with 32 keep-alive connections, 2-second runs, every contender
interleaved round by round (bare Flask, Flask's ``call_on_close``, bgtask inline, bgtask
offloaded with sync and async tasks to the default pool and to a pool sized for the load,
Starlette's sync and async ``BackgroundTask``); then the gunicorn contenders with a new
connection per request. For each contender, against its own bare app in the same round:
the throughput ratio (the task's penalty), the worker CPU per request from ``/proc`` and
what the task adds to it, and the tasks run against the requests served, with the backlog
(tasks queued and not finished) half-way and when the load stops.

The sized pool follows Little's law from a calibration run of the bare app:

    threads per worker = ceil(1.5 x requests per second per worker x task seconds)

Targets (issue 12): offloaded async tasks with the defaults >= 0.9 of bare (keep-alive and
new connections) and CPU added <= 2x Starlette's async task in the same run; offloaded
sync tasks >= 0.6 with the defaults, >= 0.75 sized, no growing backlog; inline at its
physical bound (threads / task seconds) and no worse than ``call_on_close``.
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


def cpu_added(runs: dict[str, list[Run]], label: str, bare: str) -> float:
    """Median over rounds of the worker CPU per request this contender adds to its bare app."""
    return float(
        statistics.median(
            mine.cpu_per_request - theirs.cpu_per_request
            for mine, theirs in zip(runs[label], runs[bare], strict=True)
        )
    )


def target(label: str, runs: dict[str, list[Run]], threads: int, keep_alive: bool) -> str:
    bare = "Starlette bare" if label.startswith("Starlette") else BARE
    throughput = paired(runs, label, bare, "throughput")
    grew = any(growing(run, threads) for run in runs[label])
    flat = "backlog growing" if grew else "backlog flat"
    if label == "bgtask inline, sync":
        against = paired(runs, label, "Flask call_on_close, sync", "throughput")
        bound = _server.WORKERS * _server.THREADS / (TASK_MS / 1000)
        at_bound = statistics.median(r.throughput for r in runs[label]) / bound
        passed = against >= 0.97 and at_bound >= 0.9
        return (
            f"{against:.2f}x call_on_close, {at_bound:.2f}x the bound {bound:.0f}/s (>= 0.97, "
            f">= 0.9): {_verdict(passed)}"
        )
    if label == "bgtask offload default, async":
        text = f">= 0.9: {_verdict(throughput >= 0.9)}"
        if keep_alive and "Starlette, async" in runs:
            mine = cpu_added(runs, label, BARE)
            theirs = cpu_added(runs, "Starlette, async", "Starlette bare")
            text += f"; CPU added <= 2x Starlette's ({mine / max(theirs, 1e-6):.1f}x): "
            text += _verdict(mine <= 2 * theirs)
        return text
    if label == "bgtask offload default, sync":
        return f">= 0.6, {flat}: {_verdict(throughput >= 0.6 and not grew)}"
    if label.startswith("bgtask offload sized"):
        return f">= 0.75, {flat}: {_verdict(throughput >= 0.75 and not grew)}"
    return ""


def table(
    listed: list[Contender], runs: dict[str, list[Run]], threads: int, *, keep_alive: bool
) -> None:
    rows = []
    for contender in listed:
        mine = runs[contender.label]
        is_bare = contender.label == contender.bare
        throughput = paired(runs, contender.label, contender.bare, "throughput")
        p50 = paired(runs, contender.label, contender.bare, "p50")
        added = cpu_added(runs, contender.label, contender.bare)
        rows.append(
            [
                contender.label,
                f"{statistics.median(r.throughput for r in mine):.0f}",
                "" if is_bare else f"{throughput:.2f}",
                f"{statistics.median(r.cpu_per_request for r in mine) * 1e6:.0f}",
                "" if is_bare else f"{added * 1e6:+.0f}",
                f"{statistics.median(r.p50 for r in mine) * 1000:.1f}",
                "" if is_bare else f"{p50:.2f}",
                " ".join(f"{r.finished}/{r.requests}" for r in mine),
                " ".join(f"{r.backlog_mid}>{r.backlog_end}" for r in mine),
                f"{max(r.drain_seconds for r in mine):.1f}",
                f"{statistics.median(busiest_share(r.split) for r in mine):.0%}",
                sum(r.errors for r in mine),
                target(contender.label, runs, threads, keep_alive),
            ]
        )
    print_table(
        [
            "contender",
            "req/s",
            "x bare",
            "CPU us/req",
            "CPU added",
            "p50 ms",
            "p50 x bare",
            "tasks run/served",
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
            # New connections: the gunicorn contenders, fewer rounds.
            fresh = [c for c in listed if c.bare == BARE]
            new_runs, _ = interleaved_loads(
                fresh, rounds=new_rounds, connections=CONNECTIONS, seconds=SECONDS, keep_alive=False
            )
        finally:
            for stack in started:
                stack.server.stop()
    print("### keep-alive\n")
    table(listed, runs, threads, keep_alive=True)
    print(
        f"\n{rounds} interleaved rounds of {SECONDS} s; medians of values and of per-round "
        f"ratios; backlog per round. {retried} skewed run(s) were run again.\n"
    )
    print("### new connection per request\n")
    table(fresh, new_runs, threads, keep_alive=False)
    print(f"\n{new_rounds} interleaved rounds of {SECONDS} s.")


if __name__ == "__main__":
    main()
