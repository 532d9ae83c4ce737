"""The recent ``TaskResult``s of this process, per backend alias, for ``get_result(id)``.

Bounded: past ``MAX_RESULTS`` the oldest entry is forgotten (its task still runs, and the
``TaskResult`` that ``enqueue`` returned keeps its state up to date), and ``get_result``
then raises ``TaskResultDoesNotExist``. Other processes (gunicorn's other workers, a shell)
have registries of their own: a result is found only in the process that enqueued it.
Module-level, not on the backend: Django builds a backend instance per thread.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

from ._native import allocate_lock

__all__ = ["DEFAULT_MAX_RESULTS", "Results", "results_of"]

DEFAULT_MAX_RESULTS: Final = 1000


class Results:
    """At most ``bound`` results, the most recently enqueued, by id."""

    __slots__ = ("_by_id", "_lock", "bound")

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._by_id: OrderedDict[str, Any] = OrderedDict()
        self._lock = allocate_lock()  # native: pool and loop threads record results too

    def keep(self, result: Any) -> None:
        with self._lock:
            self._by_id[result.id] = result
            while len(self._by_id) > self.bound:
                self._by_id.popitem(last=False)

    def find(self, result_id: str) -> Any | None:
        with self._lock:
            return self._by_id.get(result_id)

    def __len__(self) -> int:
        return len(self._by_id)


_registries: dict[str, Results] = {}
_registries_lock: Final = allocate_lock()


def results_of(alias: str, bound: int) -> Results:
    """The registry of the backend ``alias`` (its bound as last configured)."""
    with _registries_lock:
        results = _registries.get(alias)
        if results is None:
            results = _registries[alias] = Results(bound)
        results.bound = bound
        return results
