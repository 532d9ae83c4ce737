"""Memory over many requests: nothing may grow with traffic.

100,000 in-process WSGI requests through ``BackgroundTaskMiddleware``, each queuing one task
(in turn: a sync function, an async function, a closure made in the request, a bound
method), with ``drain()`` every 1,000 requests. After a warm-up, tracemalloc's traced memory
must grow by less than 1 MiB (the loop's and the pool's bookkeeping, the signature cache,
the event listeners: anything kept per request would show). The same again with
``offload=True``.

Run with ``python -m bench.bench_memory`` (``BGTASK_BENCH_QUICK=1``: 20,000 requests).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import TYPE_CHECKING, Any

import bgtask
from bench._common import header, print_table, scaled, stopwatch
from bench._common import verdict as _verdict
from bench._wsgi import HEADERS, environ_template, serve_once
from bgtask import BackgroundTaskMiddleware, OffloadPool, get_background_tasks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

LIMIT = 1 << 20
WARMUP = 10_000
RUNS = [0]


def sync_task(number: int) -> None:
    RUNS[0] += 1


async def async_task(number: int) -> None:
    RUNS[0] += 1


class Counter:
    def count(self, number: int) -> None:
        RUNS[0] += 1


COUNTER = Counter()


def queuing_app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    number = environ["bench.number"]
    tasks = get_background_tasks()
    kind = number % 4
    if kind == 0:
        tasks.add_task(sync_task, number)
    elif kind == 1:
        tasks.add_task(async_task, number)
    elif kind == 2:

        def closure() -> None:
            RUNS[0] += number - number + 1

        tasks.add_task(closure)
    else:
        tasks.add_task(COUNTER.count, number)
    start_response("200 OK", HEADERS)
    return [b"ok"]


def serve(app: WSGIApplication, start: int, count: int) -> None:
    environ = environ_template()
    for number in range(start, start + count):
        environ["bench.number"] = number
        serve_once(app, environ)
        if number % 1000 == 999:
            assert bgtask.drain(timeout=30)
    assert bgtask.drain(timeout=30)


def measure(name: str, app: WSGIApplication, requests: int) -> list[Any]:
    RUNS[0] = 0
    serve(app, 0, WARMUP)
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    elapsed = stopwatch()
    serve(app, WARMUP, requests)
    seconds = elapsed()
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    assert RUNS[0] == WARMUP + requests, (RUNS[0], WARMUP + requests)
    growth = after - before
    return [
        name,
        f"{requests:,}",
        f"{growth / 1024:+.1f} KiB",
        f"{(peak - before) / 1024:.0f} KiB",
        _verdict(growth < LIMIT),
        f"{seconds:.1f} s",
    ]


def main() -> None:
    header("6. Memory: requests each queuing one task, tracemalloc after a warm-up")
    requests = scaled(100_000, 20_000)
    tracemalloc.start()
    pool = OffloadPool(threads=4)
    offloading = BackgroundTaskMiddleware(queuing_app, offload=pool)
    rows = [
        measure("inline", BackgroundTaskMiddleware(queuing_app), requests),
        measure("offload (4 threads)", offloading, requests),
    ]
    tracemalloc.stop()
    print_table(["mode", "requests", "growth", "peak over start", "target", "time"], rows)
    print("\nTarget: growth < 1 MiB. Every task ran (counted).")


if __name__ == "__main__":
    main()
