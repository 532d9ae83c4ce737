"""The loop's tick: timers due within a tick share a wake-up, hand-offs to a loop that
will wake within a tick need none, and no hand-off is ever left waiting.

Every wait is on an Event or with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from bgtask import _loop
from bgtask._ticking import TICK

from .helpers.forking import run_python
from .helpers.servers import wait_for

DEADLINE = 10.0


class _CountingWakeUps:
    """Counts the loop's wake-ups from other threads (``call_soon_threadsafe``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        self._real = loop.call_soon_threadsafe

    def __enter__(self) -> _CountingWakeUps:
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return self._real(*args, **kwargs)

        self.loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.loop.call_soon_threadsafe


def test_hand_offs_to_a_loop_with_timers_due_need_no_wake_up() -> None:
    """While a task sleeps in 1 ms steps, 100 hand-offs spaced out in time wake it rarely."""
    runner = _loop._runner.get()
    stop = threading.Event()

    async def ticking_along() -> None:
        while not stop.is_set():  # noqa: ASYNC110 (timers on purpose: they keep it ticking)
            await asyncio.sleep(0.001)

    assert _loop.start(ticking_along(), "ticking along", lambda returned, value: None)
    done: list[int] = []
    try:
        with _CountingWakeUps(runner.loop) as wake_ups:
            for number in range(100):
                _loop.start(asyncio.sleep(0, number), "n", lambda ok, value: done.append(value))
                stop.wait(0.0005)  # spaced out: each lands on a loop between two ticks
            wait_for(lambda: len(done) == 100, what="the hundred coroutines")
    finally:
        stop.set()
    assert sorted(done) == list(range(100))
    # Without the tick each hand-off that finds the loop waiting wakes it: about 100 here.
    assert wake_ups.count < 20


def test_a_hand_off_to_an_idle_loop_wakes_it_at_once() -> None:
    """Nothing scheduled: the loop waits without a timeout, and a hand-off still wakes it."""
    runner = _loop._runner.get()
    _loop.run(asyncio.sleep(0), "warm the loop")
    wait_for(lambda: not runner.ticking, what="the loop to wait without a timeout")
    ended = threading.Event()
    started = time.monotonic()
    assert _loop.start(asyncio.sleep(0), "alone", lambda returned, value: ended.set())
    assert ended.wait(DEADLINE)
    assert time.monotonic() - started < 0.5


def test_timers_never_fire_early_and_at_most_about_a_tick_late() -> None:
    """asyncio.sleep(d) on the loop takes d, plus at most a tick (and the machine's noise)."""

    async def lateness(delay: float) -> float:
        started = time.monotonic()
        await asyncio.sleep(delay)
        return time.monotonic() - started - delay

    delays = [0.003 + 0.0007 * index for index in range(30)]

    async def all_of_them() -> list[float]:
        return list(await asyncio.gather(*(lateness(delay) for delay in delays)))

    late = sorted(_loop.run(all_of_them(), "timers"))
    assert late[0] >= -0.001  # asyncio's own clock resolution, no more
    assert late[len(late) // 2] <= TICK + 0.004


def test_hand_offs_racing_the_loop_going_idle_are_never_lost() -> None:
    """Eight threads hand over 2,000 coroutines in bursts while the loop idles in between."""
    done = threading.Semaphore(0)
    count = 2000
    threads_count = 8

    def hand_over(offset: int) -> None:
        for number in range(count // threads_count):
            if number % 25 == 0:
                time.sleep(0.002)  # not synchronisation: lets the loop go idle, then race it
            _loop.start(asyncio.sleep(0), f"n{offset}", lambda ok, value: done.release())

    threads = [threading.Thread(target=hand_over, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    for _ in range(count):
        assert done.acquire(timeout=DEADLINE), "a hand-off was left in the inbox"


def test_an_application_that_chose_its_event_loop_policy_keeps_its_loops() -> None:
    """A policy other than asyncio's default (uvloop's, say) makes bgtask's loop too."""
    result = run_python(
        """
        import asyncio
        from bgtask import BackgroundTask, _loop

        class Chosen(asyncio.DefaultEventLoopPolicy):
            made = 0

            def new_event_loop(self):
                Chosen.made += 1
                return super().new_event_loop()

        asyncio.set_event_loop_policy(Chosen())

        async def job():
            return type(asyncio.get_running_loop()._selector).__name__

        selector = _loop.run(job(), "job")
        print(Chosen.made, selector)
        """
    )
    assert result.returncode == 0, result.stderr
    made, selector = result.stdout.split()
    assert int(made) >= 1
    assert selector != "TickingSelector"
