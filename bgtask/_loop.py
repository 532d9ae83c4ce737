"""The private event loop: one per process, in a native thread of its own, started lazily.

Async tasks are handed to this loop and the calling (request) thread blocks until they
finish. The loop is never shared with application code and never started in a process
that runs no async task.

Facts this module is built on (measured with gunicorn and gevent):

* under gevent's monkey-patching the loop must be created *inside* a native thread;
* after ``fork()`` an inherited loop looks alive but its thread is gone: the child forgets
  it (``os.register_at_fork`` plus an owner-pid check) and starts its own;
* coroutines still pending at interpreter exit are dropped silently unless drained.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final

from ._exit import register_drainer
from ._native import native
from ._pending import Pending
from ._spawned import track_spawned_tasks
from ._stepping import Stepped
from ._wording import counted

__all__ = ["Step", "cut", "run_chain", "wait_idle"]

logger: Final = logging.getLogger("bgtask")

#: What a chain runs next: a coroutine, the context to run it in, and a name for logs.
Step = tuple[Coroutine[Any, Any, None], contextvars.Context, str]

#: How long, after the exit deadline, cancelled tasks get to unwind.
_CANCEL_GRACE: Final = 2.0


class _Runner:
    """The loop of this process and what it has pending."""

    __slots__ = ("chains", "in_flight", "loop", "pid", "spawned")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pid = os.getpid()
        #: The running asyncio tasks, touched only in the loop thread.
        self.in_flight: set[asyncio.Task[None]] = set()
        #: Tasks that those tasks spawned (asyncio.create_task), touched only in the loop thread.
        self.spawned: set[asyncio.Task[Any]] = set()
        # Counted from the submitting thread, so drain() can answer without a round trip
        # through a loop that may be busy; spawned tasks are counted in it too.
        self.chains = Pending()


_start_lock = native("_thread", "allocate_lock")()
_runner: _Runner | None = None
_registered = False


def _forget_in_child() -> None:
    # The parent's loop thread does not exist here; its loop must never be used or closed.
    global _runner, _start_lock
    _runner = None
    _start_lock = native("_thread", "allocate_lock")()


os.register_at_fork(after_in_child=_forget_in_child)


def _serve(ready: Any, started: list[_Runner]) -> None:
    # Created here, inside the native thread: a loop made elsewhere and run in this thread
    # never completes its futures under gevent.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = _Runner(loop)
    track_spawned_tasks(loop, runner.chains, runner.spawned)
    started.append(runner)
    ready.release()
    loop.run_forever()


def _start() -> _Runner:
    ready = native("_thread", "allocate_lock")()
    ready.acquire()
    started: list[_Runner] = []
    native("_thread", "start_new_thread")(_serve, (ready, started))
    ready.acquire()
    _register_once()
    return started[0]


def _register_once() -> None:
    global _registered
    if not _registered:
        _registered = True
        # After the offload pool (order 0), whose tasks may still hand work to the loop.
        register_drainer(1, _DRAINER)


def _current_runner() -> _Runner | None:
    """This process's runner, started on first use.

    None when no thread can be started any more (Python 3.12+ refuses new threads once
    the interpreter is finalizing): the caller then runs the work itself.
    """
    global _runner
    runner = _runner
    if runner is not None and runner.pid == os.getpid():
        return runner
    with _start_lock:
        if _runner is None or _runner.pid != os.getpid():
            try:
                _runner = _start()
            except RuntimeError:
                return None
        return _runner


def _refuse_inside(loop: asyncio.AbstractEventLoop) -> None:
    if asyncio._get_running_loop() is loop:
        msg = (
            "cannot wait on the bgtask loop from inside it (that would deadlock); "
            "await the coroutine instead"
        )
        raise RuntimeError(msg)


def run_chain(next_step: Callable[[], Step | None]) -> None:
    """Run coroutines one after another on the private loop; block until the chain ends.

    ``next_step`` is called in the loop thread before each coroutine and returns the next
    one, or None to end the chain. The whole chain is one hand-off to the loop and one
    asyncio task, each coroutine still running in its own context.
    """
    runner = _current_runner()
    if runner is None:
        _run_chain_here(next_step)
        return
    loop = runner.loop
    _refuse_inside(loop)
    # threading.Lock is looked up now, not at import: under gevent it is the patched lock,
    # so a waiting greenlet yields to the others instead of blocking its hub.
    done = threading.Lock()
    done.acquire()
    errors: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        runner.in_flight.discard(task)
        runner.chains.done()
        done.release()

    def start() -> None:
        task = loop.create_task(_drive(next_step, errors))
        runner.in_flight.add(task)
        task.add_done_callback(finished)

    runner.chains.add()
    loop.call_soon_threadsafe(start)
    done.acquire()
    if errors:
        raise errors[0]


async def _drive(next_step: Callable[[], Step | None], errors: list[BaseException]) -> None:
    task = asyncio.current_task()
    assert task is not None
    while True:
        try:
            step = next_step()
        except BaseException as exc:  # re-raised in the waiting thread, never in the loop's
            errors.append(exc)
            return
        if step is None:
            return
        coroutine, context, name = step
        task.set_name(name)  # what the exit deadline names when it cancels
        await Stepped(coroutine, context, name)
        if task.cancelling():
            return  # cut at the exit deadline: the rest of the chain does not start


def _run_chain_here(next_step: Callable[[], Step | None]) -> None:
    """When the loop cannot start (interpreter exit): run the chain on a loop of our own."""

    async def drive() -> None:
        loop = asyncio.get_running_loop()
        while (step := next_step()) is not None:
            coroutine, context, name = step
            await loop.create_task(coroutine, name=name, context=context)

    asyncio.run(drive())


def wait_idle(timeout: float | None) -> bool:
    """Wait until the private loop has no pending work; True when it all finished in time."""
    runner = _runner
    if runner is None or runner.pid != os.getpid():
        return True
    _refuse_inside(runner.loop)
    return runner.chains.wait(timeout)


def cut(reason: str = "exit deadline passed") -> None:
    """At the exit deadline: cancel the async tasks still running, naming them."""
    runner = _runner
    if runner is None or runner.pid != os.getpid():
        return
    runner.loop.call_soon_threadsafe(_cancel_in_flight, runner, reason)
    wait_idle(_CANCEL_GRACE)


def _cancel_in_flight(runner: _Runner, reason: str) -> None:
    tasks = [*runner.in_flight, *runner.spawned]
    names = sorted(task.get_name() for task in tasks)
    if names:
        logger.error(
            "%s, cancelling %s: %s",
            reason,
            counted(len(names), "async task"),
            ", ".join(names),
        )
    for task in tasks:
        task.cancel()


class _LoopDrainer:
    """This module's ``wait_idle`` and ``cut``, as the object ``_exit`` holds weakly."""

    def wait_idle(self, timeout: float | None, /) -> bool:
        return wait_idle(timeout)

    def cut(self, reason: str, /) -> None:
        cut(reason)


_DRAINER: Final = _LoopDrainer()
