"""Tasks that async tasks spawn on the private loop (``asyncio.create_task`` in a task).

A fire-and-forget coroutine is pending work like any other: it is counted in the loop's
:class:`~bgtask._pending.Pending` (so ``drain()`` and the exit drain wait for it), named
after its coroutine and the task that spawned it (so the exit deadline's cut names it),
and its failure is logged by name instead of vanishing with the task object.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from ._stepping import stepped

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from ._pending import Pending

__all__ = ["track_spawned_tasks"]

logger: Final = logging.getLogger("bgtask")


def track_spawned_tasks(
    loop: asyncio.AbstractEventLoop, pending: Pending, spawned: set[asyncio.Task[Any]]
) -> None:
    """Make every task created on ``loop`` from inside a task pending work, in ``spawned``.

    Call it in the loop's thread, before the loop runs anything.
    """

    def create(
        loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any], **options: Any
    ) -> asyncio.Task[Any]:
        parent = asyncio.current_task(loop)
        if parent is None:  # bgtask's own chain task, created from a callback: counted already
            return asyncio.Task(coroutine, loop=loop, **options)
        name = f"{_name_of(coroutine)} (spawned by {parent.get_name()})"
        task = _Spawned(_contained(stepped(coroutine, name), name), loop=loop, **options)
        task.set_name(name)  # create_task(name=...) renames it afterwards
        pending.add()
        spawned.add(task)
        task.add_done_callback(finished)
        return task

    def finished(task: asyncio.Task[Any]) -> None:
        spawned.discard(task)
        try:
            if not task.cancelled() and (error := task.exception()) is not None:
                # Read here, so asyncio never prints "exception was never retrieved" later.
                logger.error("async task %s failed", task.get_name(), exc_info=error)
        finally:
            pending.done()  # last: drain() returns only once the failure is logged

    loop.set_task_factory(create)  # type: ignore[arg-type, unused-ignore]


class _Spawned(asyncio.Task[Any]):
    """A spawned task, whose name survives ``create_task(coroutine)`` without a name."""

    def set_name(self, value: object) -> None:
        # Python 3.13.0's create_task calls set_name(None) after a task factory ran, which
        # would rename every spawned task "None"; a name given to create_task still wins.
        if value is not None:
            super().set_name(value)


async def _contained(coroutine: Coroutine[Any, Any, Any], name: str) -> Any:
    # asyncio lets KeyboardInterrupt and SystemExit out of a task and through the loop,
    # which would end the loop's thread: a spawned coroutine's is its failure instead.
    try:
        return await coroutine
    except (KeyboardInterrupt, SystemExit) as exc:
        msg = f"{name} raised {type(exc).__name__}"
        raise RuntimeError(msg) from exc


def _name_of(coroutine: Coroutine[Any, Any, Any]) -> str:
    frame = getattr(coroutine, "cr_frame", None)
    module = frame.f_globals.get("__name__") if frame is not None else None
    qualname = getattr(coroutine, "__qualname__", type(coroutine).__qualname__)
    return f"{module}.{qualname}" if module else qualname
