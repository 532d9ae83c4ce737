"""Async tasks from a sync thread: bgtask's private loop against the other ways to do it.

Contenders, interleaved round by round, each running one ``async def`` no-op from a
plain (request) thread and waiting for it:

* floor: ``asyncio.run_coroutine_threadsafe(coro, loop).result()`` on a loop already
  running in a thread of its own: the least any loop-thread design can cost;
* bgtask collection: ``BackgroundTasks()``, ``add_task(noop)``, run it (what ``close()`` does);
* bgtask request: a whole in-process WSGI request through the middleware queuing it;
* bgtask ``BackgroundTask(noop)()``: a direct call;
* ``asyncio.run(coro)``: a new event loop per task;
* asgiref ``async_to_sync(noop)()``.

And a collection of 10 consecutive async no-ops (one hand-off to the loop) against one, with
two floors for 10: one coroutine awaiting the 10 no-ops in turn (no per-task context), and
one coroutine creating and awaiting 10 tasks, each in a context of its own (what bgtask must
do: every task runs in a copy of the context it was queued in).

Targets: one task within 1.2x of the floor; 10 tasks at most 2x one; at least 3x faster
than asgiref. Run with ``python -m bench.bench_async_task``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync

from bench._common import header, interleave, median, paired_ratio, print_table, scaled, us
from bench._common import verdict as _verdict
from bench._wsgi import HEADERS, timed_requests
from bgtask import BackgroundTask, BackgroundTaskMiddleware, BackgroundTasks, get_background_tasks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import WSGIEnvironment

RUNS = [0]


async def noop() -> None:
    RUNS[0] += 1


def loop_in_thread() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=serve, daemon=True, name="floor-loop").start()
    ready.wait()
    return loop


def timed(operation: Callable[[], Any]) -> Callable[[int], float]:
    def run(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            operation()
        return time.perf_counter() - started

    return run


async def ten_awaited() -> None:
    for _ in range(10):
        await noop()


async def ten_tasks() -> None:
    loop = asyncio.get_running_loop()
    for _ in range(10):
        await loop.create_task(noop(), context=contextvars.copy_context())


def collection_of(count: int) -> Callable[[], None]:
    def run() -> None:
        tasks = BackgroundTasks()
        for _ in range(count):
            tasks.add_task(noop)
        tasks()

    return run


def queuing_app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    get_background_tasks().add_task(noop)
    start_response("200 OK", HEADERS)
    return [b"ok"]


def main() -> None:
    header("3. Async tasks: bgtask's private loop vs asyncio.run, asgiref and the floor")
    loop = loop_in_thread()
    rounds = scaled(15, 5)
    fast, slow = scaled(2_000, 500), scaled(200, 50)
    contenders = {
        "floor: run_coroutine_threadsafe": timed(
            lambda: asyncio.run_coroutine_threadsafe(noop(), loop).result()
        ),
        "bgtask collection, 1 task": timed(collection_of(1)),
        "bgtask request, 1 task": timed_requests(BackgroundTaskMiddleware(queuing_app)),
        "bgtask BackgroundTask(noop)()": timed(lambda: BackgroundTask(noop)()),
        "bgtask collection, 10 tasks": timed(collection_of(10)),
        "floor, 10 awaited in one coroutine": timed(
            lambda: asyncio.run_coroutine_threadsafe(ten_awaited(), loop).result()
        ),
        "floor, 10 tasks (own context) in sequence": timed(
            lambda: asyncio.run_coroutine_threadsafe(ten_tasks(), loop).result()
        ),
        "asyncio.run per task": timed(lambda: asyncio.run(noop())),
        "asgiref async_to_sync": timed(async_to_sync(noop)),
    }
    ops = dict.fromkeys(contenders, fast)
    ops["asyncio.run per task"] = ops["asgiref async_to_sync"] = slow
    before = RUNS[0]
    times = interleave(contenders, ops=ops, rounds=rounds)
    ran = RUNS[0] - before
    expected = sum(n * (10 if "10 " in name else 1) for name, n in ops.items())
    assert ran == expected * (rounds + 1), (ran, expected * (rounds + 1))

    floor = times["floor: run_coroutine_threadsafe"]
    one = times["bgtask collection, 1 task"]
    asgiref = times["asgiref async_to_sync"]
    to_floor = paired_ratio(one, floor)
    ten_to_one = paired_ratio(times["bgtask collection, 10 tasks"], one)
    speedup = paired_ratio(asgiref, one)
    targets = {
        "bgtask collection, 1 task": (
            f"{to_floor:.2f}x floor (<= 1.2): {_verdict(to_floor <= 1.2)}; "
            f"{speedup:.1f}x faster than asgiref (>= 3): {_verdict(speedup >= 3)}"
        ),
        "bgtask collection, 10 tasks": f"{ten_to_one:.2f}x one task (<= 2): "
        + _verdict(ten_to_one <= 2),
    }
    rows = [
        [name, us(median(values)), f"{paired_ratio(values, floor):.2f}", targets.get(name, "")]
        for name, values in times.items()
    ]
    print_table(["contender", "per call", "x floor", "target"], rows)
    print(f"\n{rounds} interleaved rounds; medians. Every task ran (counted).")
    loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    main()
