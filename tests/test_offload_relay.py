"""Offload at the limit: async tasks hold no thread, hand-offs share wake-ups, the pool
sizes itself to its load, and nothing is lost or reordered on the way.

Every wait is on an Event, a Barrier, or ``drain()`` with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from bgtask import BackgroundTaskMiddleware, OffloadPool, _loop, drain

from .helpers.servers import wait_for
from .test_offload import DEADLINE, app_queuing, os_threads, problems, request

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

    from bgtask import BackgroundTasks


def queueing(*calls: tuple[Any, ...]) -> Callable[[BackgroundTasks], object]:
    """What a view does that queues each ``(func, *args)`` in order."""
    return lambda tasks: [tasks.add_task(func, *args) for func, *args in calls]


def _pool_threads(pool: OffloadPool) -> int:
    state = pool._pool.peek()
    return 0 if state is None else state.threads


def test_a_collection_of_async_tasks_only_starts_no_pool_thread() -> None:
    """Two async tasks, offloaded: they run on the loop, and the pool never starts."""
    pool = OffloadPool(threads=4)
    ran: list[tuple[str, int]] = []

    async def note(label: str) -> None:
        await asyncio.sleep(0)
        ran.append((label, threading.get_ident()))

    _loop.run(asyncio.sleep(0), "warm the loop")  # its thread is not the pool's
    before = os_threads()
    app = BackgroundTaskMiddleware(app_queuing, offload=pool)
    request(app, queueing((note, "a"), (note, "b")))
    assert drain(DEADLINE)

    assert [label for label, _ in ran] == ["a", "b"]
    assert _pool_threads(pool) == 0
    assert os_threads() == before


def test_an_async_task_waiting_holds_no_thread_a_sync_collection_needs() -> None:
    """threads=1: while one collection's async task waits, another's sync task runs."""
    pool = OffloadPool(threads=1)
    app = BackgroundTaskMiddleware(app_queuing, offload=pool)
    release = threading.Event()
    ran: list[str] = []

    async def wait_for_release() -> None:
        ran.append("async waiting")
        await asyncio.to_thread(release.wait, DEADLINE)
        ran.append("async released")

    def sync(label: str) -> None:
        ran.append(label)
        if label == "sync of the second":
            release.set()

    request(
        app, queueing((sync, "sync first"), (wait_for_release,), (sync, "sync after the async"))
    )
    wait_for(lambda: "async waiting" in ran, what="the async task to wait")
    request(app, lambda tasks: tasks.add_task(sync, "sync of the second"))
    assert drain(DEADLINE)

    assert ran == [
        "sync first",
        "async waiting",
        "sync of the second",  # on the only thread, while the first collection waited
        "async released",
        "sync after the async",
    ]


def test_across_hand_offs_a_failure_skips_the_rest_in_order(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """sync, failing async, sync, async: the failure skips both after it, on either side."""
    ran: list[str] = []

    def sync(label: str) -> None:
        ran.append(label)

    async def failing() -> None:
        ran.append("failing")
        msg = "smtp down"
        raise RuntimeError(msg)

    async def never() -> None:
        ran.append("never")

    app = BackgroundTaskMiddleware(app_queuing, offload=OffloadPool(threads=2))
    request(app, queueing((sync, "first"), (failing,), (sync, "skipped"), (never,)))
    assert drain(DEADLINE)

    assert ran == ["first", "failing"]
    assert [(level, message.split(":")[0].rsplit(".", 1)[-1]) for level, message in problems(
        bgtask_log)] == [("ERROR", "failing failed"), ("WARNING", "sync skipped"),
                         ("WARNING", "never skipped")]  # fmt: skip


def test_the_rest_of_an_accepted_collection_waits_even_past_the_bound() -> None:
    """max_pending=0, one thread busy: a collection coming back from the loop with a sync
    task left is queued anyway (it was accepted), and runs once the thread is free."""
    pool = OffloadPool(threads=1, max_pending=0)
    app = BackgroundTaskMiddleware(app_queuing, offload=pool)
    busy, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> None:
        busy.set()
        release.wait(DEADLINE)
        ran.append("held")

    async def first() -> None:
        ran.append("async first")
        await asyncio.to_thread(busy.wait, DEADLINE)

    def after() -> None:
        ran.append("sync after")

    request(app, queueing((first,), (after,)))
    request(app, lambda tasks: tasks.add_task(hold))
    assert busy.wait(DEADLINE)
    release.set()
    assert drain(DEADLINE)
    assert sorted(ran) == ["async first", "held", "sync after"]
    assert ran.index("async first") < ran.index("sync after")


def test_async_collections_in_flight_are_bounded_then_run_inline(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """threads + max_pending collections in flight at most: the next runs in close()."""
    app = BackgroundTaskMiddleware(app_queuing, offload=OffloadPool(threads=1, max_pending=1))
    release = threading.Event()
    ran: list[tuple[str, int]] = []

    async def wait_for_release() -> None:
        await asyncio.to_thread(release.wait, DEADLINE)

    async def note() -> None:
        ran.append(("third", threading.get_ident()))

    for _ in range(2):
        request(app, lambda tasks: tasks.add_task(wait_for_release))
    request(app, lambda tasks: tasks.add_task(note))
    assert ran, "the third ran before close() returned: inline"
    release.set()
    assert drain(DEADLINE)
    [(level, message)] = problems(bgtask_log)
    assert (level, message.split(" (")[0]) == ("WARNING", "offload pool full")
    assert message.startswith("offload pool full (2 collections in flight,")


def test_the_pool_grows_to_its_load_then_shrinks_when_idle() -> None:
    """Eight collections that must run at once (a barrier of eight) get eight threads; after
    idle_timeout without work the threads exit."""
    pool = OffloadPool(threads=8, idle_timeout=0.2)
    app = BackgroundTaskMiddleware(app_queuing, offload=pool)
    together = threading.Barrier(8, timeout=DEADLINE)
    passed: list[int] = []

    def meet() -> None:
        together.wait()
        passed.append(threading.get_ident())

    for _ in range(8):
        request(app, lambda tasks: tasks.add_task(meet))
    assert drain(DEADLINE)
    assert len(set(passed)) == 8
    wait_for(lambda: _pool_threads(pool) == 0, what="the idle threads to exit")
    request(app, lambda tasks: tasks.add_task(meet_alone, passed))  # and it grows again
    assert drain(DEADLINE)
    assert len(passed) == 9


def meet_alone(passed: list[int]) -> None:
    passed.append(threading.get_ident())


def test_the_pool_never_runs_more_threads_than_its_cap() -> None:
    """threads=2 and four blocked collections: two run, two wait, nothing is lost."""
    pool = OffloadPool(threads=2, max_pending=10)
    app = BackgroundTaskMiddleware(app_queuing, offload=pool)
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()
    most = [0]

    def blocked() -> None:
        with lock:
            running.append(1)
            most[0] = max(most[0], len(running))
        release.wait(DEADLINE)
        with lock:
            running.pop()

    for _ in range(4):  # before any has finished, one may wait per thread
        request(app, lambda tasks: tasks.add_task(blocked))
    wait_for(lambda: len(running) == 2, what="two collections to run")
    assert _pool_threads(pool) == 2
    release.set()
    assert drain(DEADLINE)
    assert most[0] == 2


def test_hand_offs_that_arrive_while_the_loop_is_busy_share_one_wake_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fifty coroutines handed over while the loop is held: at most two wake-ups."""
    runner = _loop._runner.get()
    held, release = threading.Event(), threading.Event()

    async def hold_the_loop() -> None:
        held.set()
        release.wait(DEADLINE)  # blocks the loop on purpose (its stall is logged)

    done: list[Any] = []
    assert _loop.start(hold_the_loop(), "hold", lambda returned, value: None)
    assert held.wait(DEADLINE)
    wakes = 0
    real = runner.loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal wakes
        wakes += 1
        return real(*args, **kwargs)

    runner.loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    try:
        for number in range(50):
            _loop.start(asyncio.sleep(0, number), "n", lambda ok, value: done.append(value))
        release.set()
        wait_for(lambda: len(done) == 50, what="the fifty coroutines")
    finally:
        del runner.loop.call_soon_threadsafe
    assert sorted(done) == list(range(50))
    assert wakes <= 2


def test_drain_waits_for_a_collection_on_its_way_between_loop_and_pool() -> None:
    """async, sync, async, sync: drain() returns only once the last one has run."""
    ran: list[str] = []

    async def step(label: str) -> None:
        await asyncio.sleep(0.01)
        ran.append(label)

    def sync(label: str) -> None:
        ran.append(label)

    app = BackgroundTaskMiddleware(app_queuing, offload=OffloadPool(threads=1))
    request(app, queueing((step, "a1"), (sync, "s1"), (step, "a2"), (sync, "s2")))
    assert drain(DEADLINE)
    assert ran == ["a1", "s1", "a2", "s2"]
