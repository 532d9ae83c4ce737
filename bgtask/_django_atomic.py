"""Tasks queued inside ``transaction.atomic()`` wait for that transaction: Django decides.

When a task joins a request's collection while a connection of this thread is inside an
atomic block that the request opened (its own ``atomic()``, ``ATOMIC_REQUESTS``), the gate
registers a marker with that connection's ``on_commit``. Django runs the marker when the
outermost block commits, and forgets it when the block (or a savepoint around it) rolls
back. When the response is closed, before anything runs, a task whose marker Django forgot
is discarded with a WARNING; one whose marker ran keeps its place. A marker still waiting
belongs to a transaction that was open before the request began (``django.test.TestCase``
wraps each test in one): the request's own blocks ended without a rollback, so it runs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    from ._events import TaskEvent
    from ._request import RequestTasks
    from ._task import BackgroundTask

__all__ = ["TransactionGate"]

#: Why a gated task did not run.
ROLLED_BACK = "the transaction it was queued in was rolled back"


def _depth(connection: Any) -> int:
    """How many atomic blocks are open on ``connection`` (the outermost has no savepoint id)."""
    return 1 + len(connection.savepoint_ids) if connection.in_atomic_block else 0


class _Marker:
    """Registered with ``on_commit``: records that the transaction committed."""

    __slots__ = ("committed", "connection", "task")

    def __init__(self, task: BackgroundTask, connection: Any) -> None:
        self.task = task
        self.connection = connection
        self.committed = False

    def __call__(self) -> None:
        self.committed = True

    def forgotten(self) -> bool:
        """Django dropped it: a rollback of its block or of a savepoint around it."""
        if self.committed:
            return False
        return not any(entry[1] is self for entry in self.connection.run_on_commit)


class TransactionGate:
    """Watches one request's collection (a listener of its ``queued`` events)."""

    __slots__ = ("_base", "_markers", "_thread", "tasks")

    def __init__(self, tasks: RequestTasks) -> None:
        self.tasks = tasks
        self._thread = threading.get_ident()
        # The blocks open before the request (a TestCase's) are not the request's to judge.
        self._base = {
            connection.alias: _depth(connection)
            for connection in connections.all(initialized_only=True)
        }
        self._markers: list[_Marker] = []
        tasks.listeners = (*tasks.listeners, self._heard)

    def _heard(self, event: TaskEvent) -> None:
        # Connections are per thread: only the request's own thread has its transactions.
        if event.kind != "queued" or threading.get_ident() != self._thread:
            return
        for connection in connections.all(initialized_only=True):
            if _depth(connection) > self._base.get(connection.alias, 0):
                marker = _Marker(event.task, connection)
                connection.on_commit(marker)
                self._markers.append(marker)

    def settle(self) -> None:
        """Before the tasks run: discard those whose transaction rolled back."""
        rolled_back = [marker.task for marker in self._markers if marker.forgotten()]
        self._markers.clear()
        if rolled_back:
            self.tasks.discard_tasks(rolled_back, ROLLED_BACK)
