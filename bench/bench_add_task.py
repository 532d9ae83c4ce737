"""The cost of ``add_task``: bgtask's argument check and context capture vs Starlette's.

Starlette's ``BackgroundTasks.add_task`` stores the call and decides sync or async;
bgtask's also checks the arguments against the signature (a ``TypeError`` in the request
that made the mistake) and captures the contextvars. Both are timed on the same callables,
interleaved round by round: a plain collection, and a request's collection (what a view
queues into: it takes the seal lock).

Target: within 3x of Starlette; absolute microseconds reported.
Run with ``python -m bench.bench_add_task``.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTasks as StarletteTasks

from bench._common import header, interleave, median, paired_ratio, print_table, scaled, us
from bench._common import verdict as _verdict
from bgtask import BackgroundTasks, RequestTasks

if TYPE_CHECKING:
    from collections.abc import Callable

LIMIT = 3.0


def send_email(to: str, subject: str = "", *, priority: int = 0) -> None: ...


async def notify(to: str, subject: str = "", *, priority: int = 0) -> None: ...


class Mailer:
    def send(self, to: str, subject: str = "", *, priority: int = 0) -> None: ...


CALLABLES: dict[str, Callable[..., Any]] = {
    "function": send_email,
    "async function": notify,
    "bound method": Mailer().send,
    "functools.partial": functools.partial(send_email, priority=1),
}


#: Tasks per collection (a collection takes at most BackgroundTasks.max_tasks).
PER_COLLECTION = 1_000


def adding(make: Callable[[], Any], func: Callable[..., Any]) -> Callable[[int], float]:
    def run(n: int) -> float:
        collections = [make() for _ in range(0, n, PER_COLLECTION)]
        started = time.perf_counter()
        for collection in collections:
            add = collection.add_task
            for _ in range(PER_COLLECTION):
                add(func, "user@example.com", subject="Welcome")
        return time.perf_counter() - started

    return run


def main() -> None:
    header("4. add_task: bgtask vs Starlette's BackgroundTasks.add_task")
    rounds, ops = scaled(21, 7), scaled(20_000, 5_000)
    rows = []
    for shape, func in CALLABLES.items():
        times = interleave(
            {
                "Starlette": adding(StarletteTasks, func),
                "bgtask": adding(BackgroundTasks, func),
                "bgtask, request's collection": adding(lambda: RequestTasks({}), func),
            },
            ops=ops,
            rounds=rounds,
        )
        starlette = times["Starlette"]
        for name, values in times.items():
            ratio = paired_ratio(values, starlette)
            target = f"{_verdict(ratio <= LIMIT)}" if name != "Starlette" else ""
            rows.append([shape, name, us(median(values)), f"{ratio:.2f}", target])
    print_table(["callable", "contender", "per add_task", "x Starlette", "target <= 3x"], rows)
    print(f"\n{rounds} interleaved rounds of {ops} calls; medians.")


if __name__ == "__main__":
    main()
