"""The worker's side of a job: rebuild the request's collection from its payload, run it.

The tasks run in a :class:`BackgroundTasks` built here, so the order and the error policy
are the very code that runs them inline. Each task that succeeds adds its index (in the
order of the payload, nested collections flattened) to ``done``; a retried job passes
``done`` back and those tasks are skipped, so a retry resumes at the first task that has
not succeeded.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from typing import TYPE_CHECKING, Any, Final

from ._callables import is_async_callable
from ._collection import BackgroundTasks
from ._importable import resolve
from ._run import Run, run_here
from ._signature import check_arguments
from ._task import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ._collection import Item
    from ._events import Mode

__all__ = ["PAYLOAD_VERSION", "TasksFailed", "run_payload"]

#: The payload's format, checked by the worker: a web process and its workers must agree.
PAYLOAD_VERSION: Final = 1


class TasksFailed(Exception):
    """Raised by a job whose collection did not fully succeed, so the engine sees a failure.

    The tasks' own exceptions are logged on the ``bgtask`` logger as they happen.

    >>> print(TasksFailed.naming(["myapp.tasks.send_welcome_email"]))
    1 background task(s) did not succeed (failed, or skipped after a failure): myapp.tasks...
    """

    @classmethod
    def naming(cls, names: Sequence[str]) -> TasksFailed:
        """The failure of a job whose tasks ``names`` did not succeed."""
        return cls(
            f"{len(names)} background task(s) did not succeed (failed, or skipped after a "
            f"failure): {', '.join(names)}"
        )


def run_payload(
    payload: Mapping[str, Any],
    done: set[int],
    on_progress: Callable[[], None] | None = None,
    *,
    mode: Mode = "rq",
) -> list[str]:
    """Run a job's collection on the worker; return the names of the tasks not done.

    Tasks whose index is in ``done`` already succeeded and are skipped; each one that
    succeeds now is added to it, then ``on_progress()`` is called.
    """
    version = payload.get("bgtask")
    if version != PAYLOAD_VERSION:
        msg = (
            f"this job was queued by a bgtask with payload format {version!r}, this worker "
            f"reads {PAYLOAD_VERSION}; run the same bgtask version on web and worker"
        )
        raise ValueError(msg)
    names: dict[int, str] = {}
    items = _decode(payload["tasks"], itertools.count(), done, on_progress, names)
    collection = BackgroundTasks(items, continue_on_error=bool(payload["continue_on_error"]))
    run_here(Run(collection, mode))
    return [name for index, name in names.items() if index not in done]


def _decode(
    entries: list[dict[str, Any]],
    counter: Iterator[int],
    done: set[int],
    on_progress: Callable[[], None] | None,
    names: dict[int, str],
) -> list[Item]:
    items: list[Item] = []
    for entry in entries:
        if "tasks" in entry:
            inner = _decode(entry["tasks"], counter, done, on_progress, names)
            if inner:
                items.append(
                    BackgroundTasks(inner, continue_on_error=bool(entry["continue_on_error"]))
                )
            continue
        index = next(counter)
        reference = entry["func"]
        names[index] = reference.replace(":", ".", 1)
        if index in done:
            continue
        args, kwargs = tuple(entry["args"]), dict(entry["kwargs"])
        try:
            func = resolve(reference)
            problem = check_arguments(func, args, kwargs)
        except Exception as exc:
            problem = f"cannot import it on this worker ({type(exc).__name__}: {exc})"
        if problem is not None:
            func = _refusing(reference, problem)
        task = BackgroundTask(_recording(func, index, done, on_progress), *args, **kwargs)
        items.append(task)
    return items


def _recording(
    func: Callable[..., Any],
    index: int,
    done: set[int],
    on_progress: Callable[[], None] | None,
) -> Callable[..., Any]:
    """``func``, under its own name, adding ``index`` to ``done`` once it succeeded."""

    def succeeded() -> None:
        done.add(index)
        if on_progress is not None:
            on_progress()

    async def after(coroutine: Any) -> None:
        await coroutine
        succeeded()

    wrapper: Callable[..., Any]
    if is_async_callable(func):

        async def run_async(*args: Any, **kwargs: Any) -> None:
            await func(*args, **kwargs)
            succeeded()

        wrapper = run_async
    else:

        def run(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if inspect.iscoroutine(result):
                return after(result)  # a sync wrapper of a coroutine function: await it
            succeeded()
            return result

        wrapper = run
    # Logs name the task's function, not this wrapper.
    return functools.update_wrapper(
        wrapper, func, assigned=("__module__", "__qualname__"), updated=()
    )


def _refusing(reference: str, problem: str) -> Callable[..., None]:
    """A stand-in that fails like the task would, under its name, saying why."""

    def refuse(*args: object, **kwargs: object) -> None:
        msg = f"cannot run {reference.replace(':', '.', 1)}: {problem}"
        raise TypeError(msg)

    refuse.__module__, _, refuse.__qualname__ = reference.partition(":")
    return refuse
