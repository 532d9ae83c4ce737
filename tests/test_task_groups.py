"""Concurrent groups: a request's independent tasks at the same time, in the request's order.

Concurrency is proven with barriers and events that only tasks running at the same time
can get past (each with a deadline), never with timings alone.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from bgtask import BackgroundTaskMiddleware, BackgroundTasks, _events, drain

from .test_offload import DEADLINE, app_queuing, request


def test_a_groups_sync_tasks_run_at_the_same_time_and_the_next_task_waits_for_them() -> None:
    """Three sync tasks meet at a barrier of three: impossible one after the other."""
    barrier = threading.Barrier(3, timeout=DEADLINE)
    ran: list[str] = []
    threads: set[int] = set()

    def meet(label: str) -> None:
        threads.add(threading.get_ident())
        barrier.wait()
        ran.append(label)

    tasks = BackgroundTasks()
    tasks.add_task(ran.append, "before")
    group = tasks.add_group()
    handles = [group.add_task(meet, label) for label in "abc"]
    tasks.add_task(ran.append, "after")
    tasks()
    assert ran[0] == "before"
    assert sorted(ran[1:4]) == ["a", "b", "c"]
    assert ran[4] == "after"
    assert len(threads) == 3
    assert {handle.state for handle in handles} == {"succeeded"}


def test_a_groups_async_and_sync_tasks_run_together() -> None:
    """The sync task waits for an event only the async one, running meanwhile, sets."""
    seen = threading.Event()

    async def announce() -> None:
        await asyncio.sleep(0.01)
        seen.set()

    def wait_for_it() -> None:
        assert seen.wait(DEADLINE), "the async task did not run at the same time"

    tasks = BackgroundTasks()
    group = tasks.add_group()
    waiting, announcing = group.add_task(wait_for_it), group.add_task(announce)
    tasks()
    assert (waiting.state, announcing.state) == ("succeeded", "succeeded")


def test_async_tasks_of_a_group_overlap_on_the_loop() -> None:
    """Three async tasks each wait for the other two to have started."""
    started: list[str] = []

    async def rendezvous(label: str) -> None:
        started.append(label)
        while len(started) < 3:  # noqa: ASYNC110 (they only get past together)
            await asyncio.sleep(0.001)

    tasks = BackgroundTasks()
    group = tasks.add_group()
    for label in "abc":
        group.add_task(rendezvous, label)
    done = threading.Event()

    def run() -> None:
        tasks()
        done.set()

    threading.Thread(target=run).start()
    assert done.wait(DEADLINE), "the group's async tasks did not run at the same time"


def test_the_limit_bounds_how_many_run_at_once() -> None:
    running, most = [0], [0]
    lock = threading.Lock()
    pair = threading.Barrier(2, timeout=DEADLINE)

    def counted() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        pair.wait()  # two at a time get past: the limit is reached, never passed
        with lock:
            running[0] -= 1

    tasks = BackgroundTasks()
    group = tasks.add_group(limit=2)
    handles = [group.add_task(counted) for _ in range(4)]
    tasks()
    assert most[0] == 2
    assert {handle.state for handle in handles} == {"succeeded"}


def fail() -> None:
    msg = "the API said no"
    raise RuntimeError(msg)


def test_a_failure_fails_the_group_for_the_collection_around_it() -> None:
    """All of the group runs (continue_on_error, the default); the task after is skipped."""
    tasks = BackgroundTasks()
    group = tasks.add_group()
    failing, other = group.add_task(fail), group.add_task(print, end="")
    after = tasks.add_task(print, end="")
    tasks()
    assert (failing.state, other.state, after.state) == ("failed", "succeeded", "skipped")


def test_a_group_that_stops_at_a_failure_starts_no_more_of_its_tasks() -> None:
    tasks = BackgroundTasks(continue_on_error=True)
    group = tasks.add_group(limit=1, continue_on_error=False)
    failing, first, second = group.add_task(fail), group.add_task(print), group.add_task(print)
    after = tasks.add_task(print, end="")
    tasks()
    assert [t.state for t in (failing, first, second)] == ["failed", "skipped", "skipped"]
    assert after.state == "succeeded"  # the outer collection continues on error


@pytest.mark.parametrize("offload", [False, True])
def test_a_requests_group_runs_after_the_response_with_the_requests_events(
    offload: bool,
) -> None:
    """Through a real WSGI call: the group's events carry the request's environ."""
    barrier = threading.Barrier(2, timeout=DEADLINE)
    seen: list[Any] = []

    def listen(event: Any) -> None:
        if event.kind == "succeeded":
            seen.append(event.environ.get("PATH_INFO") if event.environ else None)

    def queue(tasks: BackgroundTasks) -> None:
        group = tasks.add_group()
        group.add_task(barrier.wait)
        group.add_task(barrier.wait)

    _events.subscribe(listen)
    try:
        request(BackgroundTaskMiddleware(app_queuing, offload=offload), queue)
        assert drain(DEADLINE)
    finally:
        _events.unsubscribe(listen)
    assert seen == ["/", "/"]


def test_a_group_holds_tasks_only_and_is_closed_with_its_request() -> None:
    tasks = BackgroundTasks()
    group = tasks.add_group()
    with pytest.raises(TypeError, match="a group holds tasks only"):
        group.add_group()
    with pytest.raises(ValueError, match="limit must be a whole number, 1 or more"):
        tasks.add_group(limit=0)
    group.add_task(print)
    assert repr(tasks) == "<BackgroundTasks [<group builtins.print>]>"
    leftover: list[BackgroundTasks] = []
    request(BackgroundTaskMiddleware(app_queuing), lambda tasks: leftover.append(tasks.add_group()))
    with pytest.raises(RuntimeError, match="have already run"):
        leftover[0].add_task(print)
