"""A collection's error policy, in one place: which task runs next, what an outcome means.

A :class:`Run` is one execution of a collection. It decides which task runs next (in the
order added, tasks added meanwhile included, nested collections under their own policy)
and what each outcome means (a failure skips the rest unless ``continue_on_error``); every
transition goes through ``_lifecycle``. It knows no thread and no loop: ``_run`` drives it.

A task's scope (``Run.scope``, an integration's hook such as Flask's app context) is a
function from the task to a context manager that gives the ``contextvars.Context`` the task
runs in; without one, a task runs in a copy of the context captured when it was queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from . import _lifecycle
from ._collection import BackgroundTasks, tasks_of
from ._native import allocate_lock
from ._task import BackgroundTask

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from ._collection import Item
    from ._events import Mode

__all__ = ["Run", "Scope", "TimedOut", "may_run"]

#: Given a task, a context manager whose value is the context to run it in.
Scope: TypeAlias = "Callable[[BackgroundTask], AbstractContextManager[contextvars.Context]]"


class _Frame:
    """A collection being run: where it is, and whether one of its tasks failed."""

    __slots__ = ("collection", "failed", "position")

    def __init__(self, collection: BackgroundTasks) -> None:
        self.collection = collection
        self.position = 0
        self.failed = False


def may_run(task: BackgroundTask, collection: BackgroundTasks) -> bool:
    """False for a task discarded while it waited (its transaction rolled back) or whose
    gate discards it now."""
    if task.state == "discarded":
        return False
    reason = task.gate() if task.gate is not None else None
    if reason is not None:
        _lifecycle.discarded(task, collection, reason)
        return False
    return True


class TimedOut(TimeoutError):
    """What an async task that was cancelled at its deadline counts as having raised."""


class Run:
    """One execution of ``collection`` under its error policy, in ``mode``.

    ``moves_retries``: a retry that must wait moves the rest of the run off the thread
    driving it (a request's, in ``close()``), to ``pool`` or the default offload pool;
    otherwise (a direct call, an engine's worker) the driver waits for it.
    ``task_timeout``: the deadline of the tasks that have none of their own.
    """

    __slots__ = (
        "_cut",
        "_frames",
        "_lock",
        "collection",
        "mode",
        "moves_retries",
        "pool",
        "scope",
        "task_timeout",
    )

    def __init__(
        self,
        collection: BackgroundTasks,
        mode: Mode = "inline",
        scope: Scope | None = None,
        *,
        moves_retries: bool = False,
        pool: object | None = None,
    ) -> None:
        self.collection = collection
        self.mode: Mode = mode
        self.scope = scope
        self.moves_retries = moves_retries
        self.pool = pool
        self.task_timeout: float | None = getattr(collection, "task_timeout", None)
        self._frames = [_Frame(collection)]
        self._cut: str | None = None
        # Native: next() runs on pool and loop threads, cut() on the exiting one.
        self._lock: Any = allocate_lock()

    @property
    def failed(self) -> bool:
        """Whether a task of the collection (or of one nested in it) failed so far."""
        return bool(self._frames) and self._frames[0].failed

    def next(self) -> Item | None:
        """The next task (or group, run as one) to run, skipping (and announcing) what the
        policy skips; None at the end, or once the run was cut."""
        with self._lock:
            frames = self._frames
            while frames and self._cut is None:
                frame = frames[-1]
                item = frame.collection._item(frame.position)
                if item is None:
                    frames.pop()
                    if frame.failed and frames:
                        frames[-1].failed = True  # a nested collection's failure counts once
                    continue
                frame.position += 1
                if frame.failed and not frame.collection.continue_on_error:
                    for task in tasks_of((item,)):
                        _lifecycle.skipped(task, self.collection, self.mode)
                    continue
                if isinstance(item, BackgroundTasks) and not item.concurrent:
                    frames.append(_Frame(item))
                    continue
                if isinstance(item, BackgroundTask) and not may_run(item, self.collection):
                    continue
                return item
            return None

    def start(self, task: BackgroundTask) -> bool:
        """``task`` starts; False when the run was cut meanwhile (it must not run)."""
        return self._cut is None and _lifecycle.started(task, self.collection, self.mode)

    def timeout_of(self, task: BackgroundTask) -> float | None:
        """``task``'s deadline in seconds from its start: its own, or the run's default."""
        options = task.options
        if options is not None and options.timeout is not None:
            return options.timeout
        return self.task_timeout

    def end(self, task: BackgroundTask, error: BaseException | None) -> float | None:
        """``task`` returned, or raised ``error``. The seconds to wait before it runs again
        when its retry policy retries it (announced as retrying), else None: it ended (a
        failure for the policy if it raised)."""
        delay = self._retry_delay(task, error) if error is not None else None
        if delay is not None:
            assert error is not None
            retry = task.options.retry  # type: ignore[union-attr]
            reason = f"attempt {task.attempts + 1} of {retry.max + 1} in {delay:g} s"  # type: ignore[union-attr]
            _lifecycle.retrying(task, self.collection, self.mode, error, reason)
            return delay
        if error is not None and self._frames:
            self._frames[-1].failed = True
        if isinstance(error, TimedOut):
            _lifecycle.timed_out(task, self.collection, self.mode, error, str(error))
        else:
            _lifecycle.ended(task, self.collection, self.mode, error)
        return None

    def _retry_delay(self, task: BackgroundTask, error: BaseException) -> float | None:
        options = task.options
        if options is None or options.retry is None or self._cut is not None:
            return None
        if task.attempts > options.retry.max or not isinstance(error, options.retry_on):
            return None
        return options.retry.delays()[task.attempts - 1]

    def cut(self, reason: str) -> None:
        """A deadline passed: name the task running and those not started; start no more."""
        with self._lock:
            if self._cut is not None:
                return
            self._cut = reason
            left: list[Item] = []
            for frame in self._frames:
                left[:0] = frame.collection._items_from(frame.position)
            started = [
                task
                for task in tasks_of(self.collection._items_from(0))
                if task.state in ("running", "retrying")
            ]
        for task in started:
            when = "while it ran" if task.state == "running" else "while it waited to retry"
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} {when}")
        for task in tasks_of(left):
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} before it started")
