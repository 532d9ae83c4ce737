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

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from ._collection import Item
    from ._events import Mode
    from ._task import BackgroundTask

__all__ = ["Run", "Scope"]

#: Given a task, a context manager whose value is the context to run it in.
Scope: TypeAlias = "Callable[[BackgroundTask], AbstractContextManager[contextvars.Context]]"


class _Frame:
    """A collection being run: where it is, and whether one of its tasks failed."""

    __slots__ = ("collection", "failed", "position")

    def __init__(self, collection: BackgroundTasks) -> None:
        self.collection = collection
        self.position = 0
        self.failed = False


class Run:
    """One execution of ``collection`` under its error policy, in ``mode``."""

    __slots__ = ("_cut", "_frames", "_lock", "collection", "mode", "scope")

    def __init__(
        self, collection: BackgroundTasks, mode: Mode = "inline", scope: Scope | None = None
    ) -> None:
        self.collection = collection
        self.mode: Mode = mode
        self.scope = scope
        self._frames = [_Frame(collection)]
        self._cut: str | None = None
        # Native: next() runs on pool and loop threads, cut() on the exiting one.
        self._lock: Any = allocate_lock()

    @property
    def failed(self) -> bool:
        """Whether a task of the collection (or of one nested in it) failed so far."""
        return bool(self._frames) and self._frames[0].failed

    def next(self) -> BackgroundTask | None:
        """The next task to run, skipping (and announcing) what the policy skips; None at
        the end, or once the run was cut."""
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
                if isinstance(item, BackgroundTasks):
                    frames.append(_Frame(item))
                    continue
                return item
            return None

    def start(self, task: BackgroundTask) -> bool:
        """``task`` starts; False when the run was cut meanwhile (it must not run)."""
        return self._cut is None and _lifecycle.started(task, self.collection, self.mode)

    def end(self, task: BackgroundTask, error: BaseException | None) -> None:
        """``task`` returned, or raised ``error`` (a failure for the policy)."""
        if error is not None and self._frames:
            self._frames[-1].failed = True
        _lifecycle.ended(task, self.collection, self.mode, error)

    def cut(self, reason: str) -> None:
        """A deadline passed: name the task running and those not started; start no more."""
        with self._lock:
            if self._cut is not None:
                return
            self._cut = reason
            left: list[Item] = []
            for frame in self._frames:
                left[:0] = frame.collection._items_from(frame.position)
            running = [
                task for task in tasks_of(self.collection._items_from(0)) if task.state == "running"
            ]
        for task in running:
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} while it ran")
        for task in tasks_of(left):
            _lifecycle.cut(task, self.collection, self.mode, f"{reason} before it started")
