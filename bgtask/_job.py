"""The worker's side of a job: check its payload, rebuild the request's collection, run it.

Whoever can write to the broker can write a payload, so the whole payload is checked
before anything runs: its version, its shape, and every function it names, either in the
application's allow-list (nothing named is imported: the declared function object runs)
or, without one, as a well-formed ``module:qualname``. One entry that fails refuses the
whole job, with one ERROR that shows the names escaped and truncated.

The tasks run in a :class:`BackgroundTasks` built here, so the order and the error policy
are the very code that runs them inline. Each task that succeeds adds its index (in the
order of the payload, nested collections flattened) to ``done``; a retried job passes
``done`` back and those tasks are skipped, so a retry resumes at the first task that has
not succeeded.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
from typing import TYPE_CHECKING, Any, Final

from ._allowlist import shown
from ._carrier import queued_with, valid_carrier
from ._collection import BackgroundTasks
from ._failed import TasksFailed
from ._importable import is_reference, resolve
from ._policy import Run
from ._progress import recording, refusing
from ._run import run_here
from ._signature import check_arguments
from ._task import BackgroundTask

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from ._allowlist import AllowList
    from ._collection import Item
    from ._events import Mode, TaskEvent
    from ._policy import Scope

__all__ = [
    "PAYLOAD_VERSION",
    "JobRefused",
    "TasksFailed",
    "refuse",
    "run_payload",
    "set_worker_scope",
]

logger: Final = logging.getLogger("bgtask")

#: The payload's format, checked by the worker: a web process and its workers must agree.
#: 2: ``declared``; workers refuse undeclared functions and malformed names.
PAYLOAD_VERSION: Final = 2
#: Nested collections deeper than this are refused (a crafted payload could recurse).
MAX_DEPTH: Final = 32


class JobRefused(Exception):
    """Raised by a job the worker would not run at all; nothing of it ran."""


def refuse(job: str, reason: str) -> JobRefused:
    """Log why ``job`` is refused at ERROR; the exception for the engine to fail it."""
    message = f"refused to run {job}: {reason}; none of its tasks ran"
    logger.error("%s", message)
    return JobRefused(message)


def run_payload(
    payload: Mapping[str, Any],
    done: set[int],
    on_progress: Callable[[], None] | None = None,
    *,
    allowed: AllowList | None = None,
    job: str = "a bgtask job",
    admit: Callable[[list[str]], bool] | None = None,
    mode: Mode = "rq",
    failures: list[tuple[str, BaseException]] | None = None,
) -> list[str]:
    """Run a job's collection on the worker; return the names of the tasks not done.

    With ``allowed``, every function must be declared there and nothing is imported;
    without it each is imported by name. Raises :class:`JobRefused` (logged) before
    running anything when the payload fails a check; then ``admit(names)`` may still
    decline the job (False: nothing runs, nothing is left to do). Tasks whose index is in ``done``
    already succeeded and are skipped; each one that succeeds now is added to it, then
    ``on_progress()`` is called. Each task that fails is added to ``failures`` with its
    exception (for the engine's failure record).
    """
    version = payload.get("bgtask") if isinstance(payload, dict) else None
    if version != PAYLOAD_VERSION or type(version) is not int:
        raise refuse(
            job,
            f"it was queued with payload format {shown(version)}, this worker reads "
            f"{PAYLOAD_VERSION}; run the same bgtask version on web and worker",
        )
    entries = list(_entries(payload, 0))
    if any(entry is None for entry in entries):
        raise refuse(job, "its payload is malformed (not what a bgtask backend sends)")
    names = [entry["func"] for entry in entries if entry is not None]
    if allowed is not None:
        refused = [name for name in names if name not in allowed]
        why = "not declared on this worker (an allow-list applies; nothing was imported)"
    else:
        refused = [name for name in names if not is_reference(name)]
        why = "not a module:qualname name (nothing was imported)"
    if refused:
        listed = ", ".join(shown(name) for name in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise refuse(job, f"{len(refused)} function name(s) {why}: {listed}{more}")
    if admit is not None and not admit([name.replace(":", ".", 1) for name in names]):
        return []
    labels: dict[int, str] = {}
    items = _decode(payload["tasks"], itertools.count(), done, on_progress, labels, allowed)
    collection = _JobTasks(items, continue_on_error=payload["continue_on_error"])
    if failures is not None:
        collection.listeners = (functools.partial(_record_failure, failures),)
    run_here(Run(collection, mode, _worker_scope))
    return [name for index, name in labels.items() if index not in done]


_worker_scope: Scope | None = None


def set_worker_scope(scope: Scope | None) -> None:
    """Run every job's tasks in this process inside ``scope`` (a worker's Flask app context:
    ``bgtask.flask.worker_context``); None: in the context each task captured."""
    global _worker_scope
    _worker_scope = scope


class _JobTasks(BackgroundTasks):
    """A job's collection on the worker, with listeners of its own (what failed, and why)."""

    __slots__ = ("listeners",)

    def __init__(self, items: list[Item], *, continue_on_error: bool) -> None:
        super().__init__(items, continue_on_error=continue_on_error)
        self.listeners: tuple[Callable[[TaskEvent], object], ...] = ()


def _record_failure(failures: list[tuple[str, BaseException]], event: TaskEvent) -> None:
    if event.kind == "failed" and event.error is not None:
        failures.append((event.name, event.error))


def _entries(node: Mapping[str, Any], depth: int) -> Iterator[dict[str, Any] | None]:
    """Every task entry under ``node``; None for anything that is not well-formed."""
    tasks = node.get("tasks")
    if (
        depth > MAX_DEPTH
        or not isinstance(tasks, list)
        or not isinstance(node.get("continue_on_error"), bool)
    ):
        yield None
        return
    for entry in tasks:
        if isinstance(entry, dict) and "tasks" in entry:
            yield from _entries(entry, depth + 1)
        elif (
            isinstance(entry, dict)
            and isinstance(entry.get("func"), str)
            and isinstance(entry.get("args"), list)
            and isinstance(entry.get("kwargs"), dict)
            # Keyword names reach error messages: identifiers only, like Python's own.
            and all(isinstance(key, str) and key.isidentifier() for key in entry["kwargs"])
        ):
            yield entry
        else:
            yield None


def _decode(
    entries: list[dict[str, Any]],
    counter: Iterator[int],
    done: set[int],
    on_progress: Callable[[], None] | None,
    labels: dict[int, str],
    allowed: AllowList | None,
) -> list[Item]:
    items: list[Item] = []
    for entry in entries:
        if "tasks" in entry:
            inner = _decode(entry["tasks"], counter, done, on_progress, labels, allowed)
            if inner:
                items.append(BackgroundTasks(inner, continue_on_error=entry["continue_on_error"]))
            continue
        index = next(counter)
        reference = entry["func"]
        labels[index] = reference.replace(":", ".", 1)
        if index in done:
            continue
        args, kwargs = tuple(entry["args"]), dict(entry["kwargs"])
        func: Callable[..., Any] | None = None
        try:
            # Declared: the function object itself, nothing imported (checked above).
            func = allowed.lookup(reference) if allowed is not None else resolve(reference)
            problem = check_arguments(func, args, kwargs) if func is not None else "undeclared"
        except Exception as exc:
            problem = f"cannot import it on this worker ({type(exc).__name__}: {exc})"
        if problem is not None or func is None:
            func = refusing(reference, problem or "undeclared")
        recorded = recording(func, index, done, on_progress)
        carrier = valid_carrier(entry.get("trace"))
        if carrier is None:
            task = BackgroundTask(recorded, *args, **kwargs)
        else:
            # The task captures this context: its listeners find the trace it came from.
            context = contextvars.copy_context()
            context.run(queued_with.set, carrier)
            task = context.run(BackgroundTask, recorded, *args, **kwargs)
        items.append(task)
    return items
