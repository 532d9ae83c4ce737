"""The web process's side of the RQ and Celery backends: check, encode, or run here.

A request's collection travels as one job (see ``_job.py``) whose payload names each
function by import path next to its arguments, in plain lists and dicts. Tasks are checked
as they are queued, so a function a worker could not import, or arguments the engine could
not serialize, fail in the request that queued them. When the engine cannot be reached in
``close()``, the collection runs in this process instead.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Final

from . import _lifecycle
from ._collection import BackgroundTasks, names_of, tasks_of
from ._importable import import_problem, reference, unwrap
from ._job import PAYLOAD_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._backend import Backend
    from ._collection import Item
    from ._events import Mode
    from ._request import RequestTasks
    from ._task import BackgroundTask

__all__ = ["RemoteBackend", "RetryPolicy", "check_remote", "describe_batch", "encode", "run_here"]

logger: Final = logging.getLogger("bgtask")


class RetryPolicy:
    """How many times an engine retries a job whose task failed, and how long it waits.

    ``max`` retries at most, per job (one request's collection). Before retry ``n`` the
    engine waits ``backoff`` seconds, or ``backoff[n - 1]`` for a sequence (its last value
    repeats). A retry runs only the tasks that have not succeeded yet, in order: the one
    that failed, then those it stopped (or, under ``continue_on_error``, the failed ones).

    >>> policy = RetryPolicy(max=4, backoff=[1, 10, 60])
    >>> policy.delays()
    [1.0, 10.0, 60.0, 60.0]
    """

    __slots__ = ("backoff", "max")

    def __init__(self, max: int, *, backoff: float | Sequence[float] = 0.0) -> None:
        if isinstance(max, bool) or not isinstance(max, int) or max < 1:
            msg = f"max must be a whole number of retries, 1 or more, got {max!r}"
            raise ValueError(msg)
        steps = [float(backoff)] if isinstance(backoff, int | float) else list(map(float, backoff))
        if not steps or any(not math.isfinite(step) or step < 0 for step in steps):
            msg = f"backoff must be seconds, zero or more (a number or a sequence), got {backoff!r}"
            raise ValueError(msg)
        self.max = max
        self.backoff: tuple[float, ...] = tuple(steps)

    def delays(self) -> list[float]:
        """The wait before each retry, one per retry."""
        last = len(self.backoff) - 1
        return [self.backoff[min(i, last)] for i in range(self.max)]

    def __repr__(self) -> str:
        backoff = self.backoff[0] if len(self.backoff) == 1 else list(self.backoff)
        return f"RetryPolicy(max={self.max}, backoff={backoff!r})"


def check_remote(
    task: BackgroundTask, *, destination: str, serializer: str, dumps: Callable[[Any], object]
) -> None:
    """Raise ``TypeError`` unless a worker can import ``task``'s function by name and
    ``dumps`` (the engine's serializer) takes its arguments."""
    func, args, kwargs = unwrap(task.func, task.args, task.kwargs)
    problem = import_problem(func)
    if problem is not None:
        msg = f"cannot queue {task.name} on {destination}: {problem}"
        raise TypeError(msg)
    try:
        dumps([args, kwargs])
    except Exception as exc:
        msg = (
            f"cannot queue {task.name} on {destination}: its arguments cannot be serialized "
            f"with {serializer} ({type(exc).__name__}: {exc}); pass plain data the worker "
            "can load (ids, strings, numbers) and fetch the rest in the task"
        )
        raise TypeError(msg) from None


def encode(batch: BackgroundTasks, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """The job's payload for ``batch``: plain lists, dicts and strings around the arguments."""
    payload: dict[str, Any] = {
        "bgtask": PAYLOAD_VERSION,
        "continue_on_error": batch.continue_on_error,
        "tasks": [_encode(item) for item in batch.tasks],
    }
    if retry is not None:
        payload["retry_delays"] = retry.delays()
    return payload


def describe_batch(batch: BackgroundTasks, limit: int = 10) -> str:
    """A job description naming the tasks (never their arguments) for the engine's logs."""
    names = names_of(batch.tasks)
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"bgtask: {shown}{more}"


class RemoteBackend:
    """What the RQ and Celery backends share: the check at ``add_task``, one job per
    collection sent after the response, and running here when the engine is unreachable.

    A subclass says where jobs go (``destination``), how the engine serializes
    (``serializer``) and how it sends one (``send``).

    >>> class Printing(RemoteBackend):
    ...     def destination(self): return "stdout"
    ...     def serializer(self): return "repr", repr
    ...     def send(self, batch): print(describe_batch(batch))
    >>> backend = Printing(retry=None, fallback=None)
    """

    __slots__ = ("fallback", "retry")

    def __init__(self, *, retry: RetryPolicy | None, fallback: Backend | None) -> None:
        self.retry = retry
        self.fallback = fallback

    def destination(self) -> str:
        """Where jobs go, for messages: ``RQ queue 'bgtask'``."""
        raise NotImplementedError

    def serializer(self) -> tuple[str, Callable[[Any], object]]:
        """The engine's serializer: its name for messages, and its ``dumps``."""
        raise NotImplementedError

    #: The mode of the events of tasks sent by this backend.
    mode: Mode = "rq"

    def send(self, batch: RequestTasks) -> None:
        """Hand ``batch`` to the engine as one job; raise if it cannot be reached."""
        raise NotImplementedError

    def check(self, task: BackgroundTask) -> None:
        """Raise ``TypeError`` for a task a worker could not import, or whose arguments the
        engine could not serialize."""
        name, dumps = self.serializer()
        check_remote(task, destination=self.destination(), serializer=name, dumps=dumps)

    def submit(self, tasks: RequestTasks) -> None:
        """Send ``tasks`` as one job; run them here if that fails. Never raises."""
        if tasks.seal_if_empty():
            return
        batch = tasks.take()
        try:
            self.send(batch)
        except Exception as exc:
            run_here(batch, self.fallback, self.destination(), exc)
            return
        destination = self.destination()
        for task in tasks_of(batch.tasks):
            _lifecycle.handed_off(task, batch, self.mode, destination, final=True)


def run_here(
    batch: RequestTasks, fallback: Backend | None, destination: str, error: Exception
) -> None:
    """The engine is unreachable: run ``batch`` in this process (or ``fallback``), warning."""
    names = names_of(batch.tasks)
    logger.warning(
        "bgtask: could not enqueue %d background task(s) on %s (%s: %s); running them in "
        "this process %s instead: %s",
        len(names),
        destination,
        type(error).__name__,
        error,
        "inline" if fallback is None else f"with {type(fallback).__name__}",
        ", ".join(names),
    )
    if fallback is None:
        batch.run_for_request("fallback")
    else:
        fallback.submit(batch)


def _encode(item: Item) -> dict[str, Any]:
    if isinstance(item, BackgroundTasks):
        return {
            "tasks": [_encode(inner) for inner in item.tasks],
            "continue_on_error": item.continue_on_error,
        }
    func, args, kwargs = unwrap(item.func, item.args, item.kwargs)
    problem = import_problem(func)
    if problem is not None:
        msg = f"cannot queue {item.name}: {problem}"
        raise TypeError(msg)
    return {"func": reference(func), "args": list(args), "kwargs": kwargs}
