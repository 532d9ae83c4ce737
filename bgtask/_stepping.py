"""Awaiting a coroutine step by step: in a context of its own, timing every step.

A step that runs longer than :data:`SLOW_STEP` held the private loop, which every request's
async tasks share: ``time.sleep(2)`` inside an ``async def`` delays all of them by two
seconds. The task that did it is named in one WARNING (per task), as asyncio's debug mode
would (``slow_callback_duration``), without that mode's cost.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Coroutine, Generator

__all__ = ["SLOW_STEP", "Stepped", "stepped"]

logger: Final = logging.getLogger("bgtask")

#: Seconds a step may hold the loop before it is reported (asyncio's debug default).
SLOW_STEP: Final = 0.1


class Stepped:
    """Await ``coroutine`` with each of its steps run in ``context`` (None: the caller's).

    With a context, the same as awaiting a new asyncio task created with ``context=``,
    without the task: a chain's one task carries every coroutine, so ten consecutive async
    tasks cost one hand-off, not ten task creations and loop iterations.
    """

    __slots__ = ("context", "coroutine", "name")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        context: contextvars.Context | None,
        name: str,
    ) -> None:
        self.coroutine = coroutine
        self.context = context
        self.name = name

    def __await__(self) -> Generator[Any, Any, Any]:
        send, throw = self.coroutine.send, self.coroutine.throw
        run = self.context.run if self.context is not None else _call
        clock = time.perf_counter
        value: Any = None
        error: BaseException | None = None
        reported = False
        while True:
            began = clock()
            try:
                yielded = run(send, value) if error is None else run(throw, error)
            except StopIteration as stop:
                return stop.value
            finally:
                held = clock() - began
                if held > SLOW_STEP and not reported:
                    reported = True
                    _report_stall(self.name, held)
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as exc:  # CancelledError from the task: pass it inside
                error = exc


async def stepped(
    coroutine: Coroutine[Any, Any, Any], name: str, context: contextvars.Context | None = None
) -> Any:
    """``coroutine`` as a new coroutine whose steps are timed (and run in ``context``)."""
    return await Stepped(coroutine, context, name)


def _call(function: Any, argument: Any) -> Any:
    return function(argument)


def _report_stall(name: str, held: float) -> None:
    logger.warning(
        "async task %s held the event loop for %.2f s without awaiting (a blocking call "
        "inside async def?): every other async task waited; await instead, or move the "
        "blocking work to a sync task or asyncio.to_thread",
        name,
        held,
    )
