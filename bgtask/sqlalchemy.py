"""Tasks bound to a SQLAlchemy transaction: they run only if it commits.

``add_task_on_commit(session, func, ...)`` queues ``func`` on the request's collection, in
its place, and ties it to the session's transaction in progress (its savepoint too, inside
``begin_nested()``). It runs after the response, as usual, if that transaction committed;
if it rolled back, or the session closed without committing, the task is discarded at once
with a WARNING naming it; if the transaction is still open when the task's turn comes, it
is discarded then. With no transaction in progress there is nothing to wait for: it is
queued as ``add_task`` would. Built on the session's own events (``after_commit``,
``after_transaction_end``), for a ``Session`` or a ``scoped_session`` (Flask-SQLAlchemy's
``db.session``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ParamSpec

from ._extras import require

require(__name__, "sqlalchemy", "sqlalchemy")

from sqlalchemy import event  # noqa: E402 (after the check that names the extra)
from sqlalchemy.orm import Session, scoped_session  # noqa: E402

from . import _lifecycle  # noqa: E402
from ._current import get_background_tasks  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import SessionTransaction

    from ._collection import BackgroundTasks
    from ._task import BackgroundTask

__all__ = ["add_task_on_commit"]

P = ParamSpec("P")

ROLLED_BACK = (
    "the transaction it was queued in did not commit (it rolled back, or its session closed)"
)
STILL_OPEN = "its database transaction had not committed when its turn came"


def add_task_on_commit(
    session: Session | scoped_session[Any],
    func: Callable[P, object],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> BackgroundTask:
    """Queue ``func(*args, **kwargs)`` to run after the response if ``session``'s
    transaction in progress commits; returns the task (its handle).

    >>> from sqlalchemy import create_engine, text
    >>> from bgtask import BackgroundTasks
    >>> from bgtask._current import current_tasks
    >>> def send_receipt(order_id: int) -> None: ...
    >>> session, tasks = Session(create_engine("sqlite://")), BackgroundTasks()
    >>> token = current_tasks.set(tasks)
    >>> _ = session.execute(text("select 1"))  # a transaction begins
    >>> task = add_task_on_commit(session, send_receipt, 42)
    >>> session.rollback()
    >>> task.state
    'discarded'
    >>> current_tasks.reset(token)
    >>> session.close()
    >>> session.bind.dispose()
    """
    own = session() if isinstance(session, scoped_session) else session
    tasks = get_background_tasks()
    task = tasks.add_task(func, *args, **kwargs)
    innermost = own.get_nested_transaction() or own.get_transaction()
    if innermost is not None:
        _Watch.of(own).gates.append(_Gate(innermost, task, tasks))
    return task


class _Gate:
    """One task waiting for a transaction (and the savepoints it was queued in) to commit."""

    def __init__(
        self, innermost: SessionTransaction, task: BackgroundTask, tasks: BackgroundTasks
    ) -> None:
        self.task = task
        self.tasks = tasks
        #: The transactions that must commit, innermost first; the last is the root.
        self.waiting: list[SessionTransaction] = []
        transaction: SessionTransaction | None = innermost
        while transaction is not None:
            self.waiting.append(transaction)
            transaction = transaction.parent
        task.gate = self.reason

    def reason(self) -> str | None:
        """Asked when the task's turn comes: why it must not run, or None."""
        return STILL_OPEN if self.waiting else None

    def ended(self, transaction: SessionTransaction, committed: bool) -> bool:
        """``transaction`` ended; True once this gate has nothing left to wait for."""
        if transaction not in self.waiting:
            return False
        if committed:
            self.waiting.remove(transaction)
            return not self.waiting
        self.waiting.clear()
        if self.task.state == "queued":  # not given up at its turn already
            _lifecycle.discarded(self.task, self.tasks, ROLLED_BACK)
        return True


class _Watch:
    """A session's gates, and the two listeners that tell them (one pair per session:
    listeners cannot be removed while SQLAlchemy dispatches to them)."""

    def __init__(self, session: Session) -> None:
        self.gates: list[_Gate] = []
        # A commit is told by after_commit, then after_transaction_end of that transaction;
        # a rollback or a close by after_transaction_end alone.
        self.committing = False
        event.listen(session, "after_commit", self.on_commit)
        event.listen(session, "after_transaction_end", self.on_end)

    @classmethod
    def of(cls, session: Session) -> _Watch:
        watch: _Watch | None = session.info.get(_KEY)
        if watch is None:
            watch = session.info[_KEY] = cls(session)
        return watch

    def on_commit(self, session: Session) -> None:
        self.committing = True

    def on_end(self, session: Session, transaction: SessionTransaction) -> None:
        committed, self.committing = self.committing, False
        self.gates = [gate for gate in self.gates if not gate.ended(transaction, committed)]


_KEY = "bgtask.on_commit"
