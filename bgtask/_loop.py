"""The private event loop: one per process, in a native thread of its own, started lazily.

It runs the coroutines it is handed (``run`` blocks the calling thread until one is done,
``start`` returns at once and calls back) and knows nothing of tasks or requests. It is
never shared with application code and never started in a process that runs no async
task. Facts it is built on (measured with gunicorn and gevent):

* under gevent's monkey-patching the loop must be created *inside* a native thread;
* after ``fork()`` an inherited loop looks alive but its thread is gone (``PerProcess``);
* coroutines still pending at interpreter exit are dropped silently unless drained, and so
  are the tasks they spawn (``_spawned``);
* waiting on the loop from inside it deadlocks: refused with a clear error;
* each ``call_soon_threadsafe`` writes to the loop's self-pipe, and on a loaded server
  each wake-up of the loop's thread is a fight for the GIL: hand-offs join an inbox the
  loop empties in one go, and they wake the loop only when it will not wake within a tick
  anyway (``_ticking``: while timers are due, it wakes on a 2 ms grid). An offloaded
  worker's CPU per request with 20 ms async tasks fell from +188 to +86 µs with the tick.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from ._exit import register_drainer
from ._native import allocate_lock, start_thread
from ._pending import Pending
from ._process import PerProcess
from ._spawned import track_spawned_tasks
from ._ticking import TickingSelector
from ._wording import counted

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["OnDone", "cutting", "later", "refuse_inside", "run", "start"]

#: Called on the loop's thread with (True, result) or (False, error) when a coroutine ends.
OnDone: TypeAlias = "Callable[[bool, Any], object]"

T = TypeVar("T")

logger: Final = logging.getLogger("bgtask")

#: How long, after a deadline, cancelled tasks get to unwind.
_CANCEL_GRACE: Final = 2.0


class _Runner:
    """The loop of this process and what it has pending."""

    def __init__(self) -> None:
        ready = allocate_lock()
        ready.acquire()
        #: Tasks handed over, and tasks that those tasks spawned (loop thread only).
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.spawned: set[asyncio.Task[Any]] = set()
        #: The tasks of in_flight that no runner names when a deadline cuts them.
        self.unnamed: set[asyncio.Task[Any]] = set()
        # Counted from the submitting thread, so drain() can answer without a round trip
        # through a loop that may be busy; spawned tasks are counted in it too.
        self.pending = Pending()
        #: Why the loop is cancelling everything (a deadline passed), or None.
        self.cutting: str | None = None
        #: Hand-offs not taken yet, and whether a wake-up to take them is on its way.
        self.inbox: deque[_Handed] = deque()
        self.awake = False
        #: Whether the loop will take its inbox soon without a wake-up: it is running, or
        #: waiting at most a tick (``_ticking``).
        self.ticking = False
        start_thread(self._serve, ready, name="bgtask-loop")
        ready.acquire()

    def _serve(self, ready: Any) -> None:
        # Created here, inside the native thread: a loop made elsewhere and run in this
        # thread never completes its futures under gevent.
        self.loop = self._new_loop()
        asyncio.set_event_loop(self.loop)
        track_spawned_tasks(self.loop, self.pending, self.spawned)
        ready.release()
        self.loop.run_forever()

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if type(asyncio.get_event_loop_policy()) is not asyncio.DefaultEventLoopPolicy:
            # The application chose its loops (uvloop, say): its choice, without the tick.
            return asyncio.new_event_loop()
        ticking = TickingSelector(selectors.DefaultSelector(), self._before_wait, self._after_wait)
        return asyncio.SelectorEventLoop(ticking)

    def hand(self, handed: _Handed, *, urgent: bool = False) -> None:
        """From any thread: have the loop start ``handed``, waking it only if it will not
        look at its inbox within a tick anyway (unless ``urgent``: a thread waits for it)
        and no wake-up is on its way already."""
        self.pending.add()
        self.inbox.append(handed)
        # Appended before the flags are read, and the loop clears `ticking` before it
        # looks at the inbox and waits: one of the two always sees the other.
        if (urgent or not self.ticking) and not self.awake:
            # Racing the loop's take_inbox() can only cost an extra wake-up, never a lost
            # hand-off: it clears the flag before it empties the inbox.
            self.awake = True
            self.loop.call_soon_threadsafe(self.take_inbox)

    def _before_wait(self, soon: bool) -> bool:
        # In the loop's thread, before every wait: True, do not wait, the inbox has work.
        self.ticking = soon
        return bool(self.inbox)

    def _after_wait(self) -> None:
        self.ticking = True  # running: it reaches _before_wait again before it waits
        if self.inbox and not self.awake:
            self.awake = True
            self.loop.call_soon(self.take_inbox)

    def take_inbox(self) -> None:
        """On the loop: start everything handed over since the last wake-up."""
        self.awake = False
        inbox = self.inbox
        while inbox:
            handed = inbox.popleft()
            task = self.loop.create_task(_contained(handed.coroutine), name=handed.name)
            self.in_flight.add(task)
            if not handed.names_its_tasks:
                self.unnamed.add(task)
            task.add_done_callback(handed.finished)


class _Handed:
    """A coroutine on its way to the loop, and who to tell when it ends."""

    __slots__ = ("coroutine", "name", "names_its_tasks", "on_done", "runner")

    def __init__(
        self,
        runner: _Runner,
        coroutine: Coroutine[Any, Any, Any],
        name: str,
        names_its_tasks: bool,
        on_done: OnDone,
    ) -> None:
        self.runner = runner
        self.coroutine = coroutine
        self.name = name
        self.names_its_tasks = names_its_tasks
        self.on_done = on_done

    def finished(self, task: asyncio.Task[tuple[bool, Any]]) -> None:
        runner = self.runner
        runner.in_flight.discard(task)
        runner.unnamed.discard(task)
        returned, value = task.result()
        runner.pending.done()  # first: whoever on_done wakes may drain() at once
        self.on_done(returned, value)


_runner: Final[PerProcess[_Runner]] = PerProcess(_Runner)


def start(
    coroutine: Coroutine[Any, Any, Any],
    name: str,
    on_done: OnDone,
    *,
    names_its_tasks: bool = False,
) -> bool:
    """Start ``coroutine`` on the private loop and return at once; ``on_done(returned,
    value)`` is called on the loop's thread when it ends (it must not raise).

    ``name`` is the asyncio task's (see :func:`run`). False, the coroutine closed unstarted,
    when no loop can be started any more (the interpreter is finalizing, 3.12+).
    """
    try:
        runner = _runner.get()
    except RuntimeError:
        coroutine.close()
        return False
    runner.hand(_Handed(runner, coroutine, name, names_its_tasks, on_done))
    return True


def later(delay: float, callback: Callable[[], object]) -> bool:
    """From any thread: call ``callback`` on the loop's thread in ``delay`` seconds (it
    must not raise). Not pending work: ``drain()`` does not wait for it. False when no loop
    can be started any more (the interpreter is finalizing)."""
    try:
        runner = _runner.get()
    except RuntimeError:
        return False
    runner.loop.call_soon_threadsafe(runner.loop.call_later, delay, _logged, callback)
    return True


def _logged(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("a bgtask timer's callback raised")


def run(coroutine: Coroutine[Any, Any, T], name: str, *, names_its_tasks: bool = False) -> T:
    """Run ``coroutine`` on the private loop and return its result (or raise its error).

    Blocks the calling thread (a greenlet, under gevent, yields to the others meanwhile).
    ``name`` is the asyncio task's, which a deadline's cut logs unless ``names_its_tasks``
    (the runner announces each background task it cuts). Raises ``RuntimeError``, closing
    the coroutine, when called from the loop's own thread.
    """
    try:
        runner = _runner.get()
    except RuntimeError:
        # No thread can be started any more (the interpreter is finalizing, 3.12+): run it
        # on a loop of its own, in this thread.
        return asyncio.run(coroutine)
    try:
        refuse_inside()
    except RuntimeError:
        coroutine.close()  # never handed over: no "never awaited" warning
        raise
    # threading.Lock is looked up now, not at import: under gevent it is the patched lock,
    # so a waiting greenlet yields to the others instead of blocking its hub.
    done = threading.Lock()
    done.acquire()
    outcome: list[tuple[bool, Any]] = []

    def on_done(returned: bool, value: Any) -> None:
        outcome.append((returned, value))
        done.release()

    runner.hand(_Handed(runner, coroutine, name, names_its_tasks, on_done), urgent=True)
    done.acquire()
    returned, value = outcome[0]
    if not returned:
        raise value
    result: T = value
    return result


async def _contained(coroutine: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """(True, result) or (False, error): asyncio lets KeyboardInterrupt and SystemExit out
    of a task and through the loop itself, which would end the loop's thread."""
    try:
        return True, await coroutine
    except BaseException as exc:
        return False, exc


def refuse_inside() -> None:
    """``RuntimeError`` when called on the loop's own thread, where waiting deadlocks."""
    runner = _runner.peek()
    if runner is not None and asyncio._get_running_loop() is runner.loop:
        msg = (
            "cannot wait on the bgtask loop from inside it (that would deadlock); "
            "await the coroutine instead"
        )
        raise RuntimeError(msg)


def cutting() -> str | None:
    """Why the loop is cancelling its tasks (a deadline passed), or None."""
    runner = _runner.peek()
    return None if runner is None else runner.cutting


class _LoopDrainer:
    """The loop as ``_exit`` drains it."""

    def wait_idle(self, timeout: float | None, /) -> bool:
        runner = _runner.peek()
        if runner is None:
            return True
        if asyncio._get_running_loop() is runner.loop:
            msg = (
                "cannot wait for bgtask's pending work from inside its loop (that would "
                "deadlock); await the coroutine instead"
            )
            raise RuntimeError(msg)
        return runner.pending.wait(timeout)

    def cut(self, reason: str, /) -> None:
        """Cancel every task on the loop; the tasks' runner names the background tasks."""
        runner = _runner.peek()
        if runner is None:
            return
        runner.loop.call_soon_threadsafe(_cancel_all, runner, reason)
        runner.pending.wait(_CANCEL_GRACE)


def _cancel_all(runner: _Runner, reason: str) -> None:
    runner.cutting = reason
    names = sorted(task.get_name() for task in [*runner.unnamed, *runner.spawned])
    if names:
        logger.error(
            "%s, cancelling %s: %s", reason, counted(len(names), "async task"), ", ".join(names)
        )
    for task in [*runner.in_flight, *runner.spawned]:
        task.cancel()


_DRAINER: Final = _LoopDrainer()  # held here: the exit drain holds its drainers weakly
# After the pool (order 0), whose tasks may still hand work to the loop.
register_drainer(1, _DRAINER)
