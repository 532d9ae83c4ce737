"""A group: a collection whose tasks run at the same time (``BackgroundTasks.add_group``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._collection import BackgroundTasks
from ._task import BackgroundTask

if TYPE_CHECKING:
    import contextvars

    from ._collection import Item

__all__ = ["Group"]


class Group(BackgroundTasks):
    """A collection whose tasks run at the same time: see :meth:`BackgroundTasks.add_group`.

    Its tasks belong to the collection that made it (``owner``): a request's checks, seal,
    environ and listeners apply to them.
    """

    __slots__ = ("limit", "owner")

    concurrent: ClassVar[bool] = True

    def __init__(
        self, owner: BackgroundTasks, *, limit: int | None, continue_on_error: bool
    ) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            msg = f"limit must be a whole number, 1 or more, or None; got {limit!r}"
            raise ValueError(msg)
        super().__init__(continue_on_error=continue_on_error)
        self.owner = owner
        self.limit = limit

    @property
    def releases_tasks(self) -> bool:  # type: ignore[override]
        return self.owner.releases_tasks

    def __getattr__(self, name: str) -> Any:
        # environ, listeners, sent: the owner's (what events about its tasks report).
        if name in ("environ", "listeners", "sent"):
            return getattr(self.owner, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return "<group " + ", ".join(task.name for task in self.tasks) + ">"  # type: ignore[union-attr]

    def in_context(self, context: contextvars.Context) -> BackgroundTasks:
        msg = "a group is made for one collection, by add_group(); it has no copies"
        raise TypeError(msg)

    def add_group(
        self, *, limit: int | None = None, continue_on_error: bool = True
    ) -> BackgroundTasks:
        msg = "a group holds tasks only (add_task), not groups"
        raise TypeError(msg)

    def _add(self, item: Item) -> None:
        if not isinstance(item, BackgroundTask):
            msg = "a group holds tasks only (add_task), not collections"
            raise TypeError(msg)
        refuse = getattr(self.owner, "_refuse_if_sealed", None)
        if refuse is not None:
            refuse()
        check = getattr(self.owner, "_check_all", None)
        if check is not None:
            check([item])
        super()._add(item)
