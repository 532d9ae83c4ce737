"""An ordered collection of background tasks, as users see it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeAlias

from . import _lifecycle
from ._task import BackgroundTask

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Iterable, Iterator


__all__ = [
    "BackgroundTasks",
    "Item",
    "check_item",
    "install_collection_runner",
    "names_of",
    "tasks_of",
]

P = ParamSpec("P")

Item: TypeAlias = "BackgroundTask | BackgroundTasks"

_run_collection: Callable[[BackgroundTasks], None] | None = None


def install_collection_runner(runner: Callable[[BackgroundTasks], None]) -> None:
    """How calling a collection runs it: installed by ``bgtask._run`` on import."""
    global _run_collection
    _run_collection = runner


class BackgroundTasks:
    """An ordered collection of background tasks, itself callable.

    Calling it runs the tasks in the order they were added, including tasks that running
    tasks add. When a task raises, it is logged on the ``bgtask`` logger with its
    traceback, and the rest are skipped (each logged as skipped) unless
    ``continue_on_error`` is true. Calling a collection never raises a task's exception. A
    collection may contain another: the inner one runs under its own policy and its failure
    counts as one for the outer.

    ``add_task`` is safe to call from several threads, and returns the task: its handle.
    A collection takes at most ``max_tasks`` tasks over its life (10,000; tasks added while
    it runs count too), so a task that queues tasks on its own collection in a loop fails
    instead of growing it without bound; set ``BackgroundTasks.max_tasks`` to change it.

    >>> def write_log(message: str) -> None: ...
    >>> tasks = BackgroundTasks()
    >>> task = tasks.add_task(write_log, "signed up")
    >>> tasks
    <BackgroundTasks [bgtask.write_log]>
    >>> tasks()
    >>> task.state
    'succeeded'
    """

    __slots__ = ("_items", "continue_on_error")

    #: Whether its tasks run at the same time (a group: :meth:`add_group`).
    concurrent: ClassVar[bool] = False
    #: What the runners ask of an item: a collection runs from a thread, never on the loop.
    is_async: ClassVar[bool] = False

    #: The most tasks one collection takes over its life (see the class docstring).
    max_tasks: ClassVar[int] = 10_000
    #: Whether its tasks let go of their arguments once ended (a request's run once).
    releases_tasks: ClassVar[bool] = False

    def __init__(
        self, tasks: Iterable[Item] | None = None, *, continue_on_error: bool = False
    ) -> None:
        self._items: list[Item] = []
        self.continue_on_error = continue_on_error
        for item in tasks or ():
            self._add(check_item(item))

    @property
    def tasks(self) -> tuple[Item, ...]:
        """The tasks, in the order they run (a copy: queue with ``add_task``)."""
        return tuple(self._items)

    def add_task(
        self, func: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
    ) -> BackgroundTask:
        """Queue ``func(*args, **kwargs)``; raises ``TypeError`` now if they cannot bind.

        ``func`` is positional-only, so a task may itself take a ``func=`` keyword.
        Returns the task, whose ``state`` tells whether it ran.
        """
        task = BackgroundTask(func, *args, **kwargs)
        self._add(task)
        return task

    def add_group(
        self, *, limit: int | None = None, continue_on_error: bool = True
    ) -> BackgroundTasks:
        """Queue a group of tasks that run at the same time, in this collection's order.

        Add to the returned group with ``add_task``. Its async tasks run together on
        bgtask's loop, its sync tasks on threads of their own, at most ``limit`` of each
        kind at a time (None: all of them). The group ends when its last task has; it
        failed if one of its tasks failed (the policy of this collection applies to that).
        With ``continue_on_error=False``, a failure stops the group from starting the tasks
        it has not started yet (each skipped); those running finish.

        >>> def fetch(url: str) -> None: ...
        >>> tasks = BackgroundTasks()
        >>> group = tasks.add_group(limit=4)
        >>> _ = group.add_task(fetch, "https://example.com/a")
        >>> _ = group.add_task(fetch, "https://example.com/b")
        >>> tasks
        <BackgroundTasks [<group bgtask.fetch, bgtask.fetch>]>
        """
        from ._groups import Group

        group = Group(self, limit=limit, continue_on_error=continue_on_error)
        self._add(group)
        return group

    def __call__(self) -> None:
        assert _run_collection is not None, "bgtask._run installs the runner on import"
        _run_collection(self)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        names = ", ".join(_name(item) for item in self.tasks)
        return f"<BackgroundTasks [{names}]>"

    def discard(self, *, seal: bool = True, reason: str = "discard() was called") -> list[Item]:
        """Drop every task not run yet, each announced (and logged) as discarded, and
        return them. ``seal`` matters for a request's collection: with ``seal=False`` it
        stays open, so an error handler running after a failed view may queue tasks."""
        items, self._items = self._items, []
        for task in tasks_of(items):
            _lifecycle.discarded(task, self, reason)
        return items

    def in_context(self, context: contextvars.Context) -> BackgroundTasks:
        """A copy whose tasks run in ``context`` (a route's fixed tasks, per request)."""
        return BackgroundTasks(
            [item.in_context(context) for item in self.tasks],
            continue_on_error=self.continue_on_error,
        )

    # -- what the runner reads (bgtask._run) ----------------------------------------------

    def _add(self, item: Item) -> None:
        self._refuse_past_limit(item)
        self._items.append(item)
        if isinstance(item, BackgroundTask):
            _lifecycle.queued(item, self)

    def _refuse_past_limit(self, item: Item) -> None:
        if len(self._items) >= self.max_tasks:
            msg = (
                f"cannot queue {_name(item)}: this collection already took {self.max_tasks} "
                "tasks, the most one may (BackgroundTasks.max_tasks); is a task queueing "
                "tasks on its own collection in a loop?"
            )
            raise RuntimeError(msg)

    def _item(self, index: int) -> Item | None:
        """The item at ``index`` in run order, or None once there is none left to run."""
        items = self._items
        return items[index] if index < len(items) else None

    def _items_from(self, index: int) -> list[Item]:
        """The items at ``index`` and after, in run order (what a cut names)."""
        return self._items[index:]


def check_item(item: Any) -> Item:
    """``item`` if it is a task or a collection; ``TypeError`` otherwise."""
    if not isinstance(item, (BackgroundTask, BackgroundTasks)):
        msg = (
            f"expected a BackgroundTask or BackgroundTasks, got {type(item).__name__}; "
            "use add_task(func, *args, **kwargs) to queue a plain callable"
        )
        raise TypeError(msg)
    return item


def tasks_of(items: Iterable[Item]) -> Iterator[BackgroundTask]:
    """Every task in ``items``, nested collections flattened, in order."""
    for item in items:
        if isinstance(item, BackgroundTask):
            yield item
        else:
            yield from tasks_of(item.tasks)


def names_of(items: Iterable[Item]) -> list[str]:
    """The names of every task in ``items``, in order."""
    return [task.name for task in tasks_of(items)]


def _name(item: Item) -> str:
    return item.name if isinstance(item, BackgroundTask) else repr(item)
