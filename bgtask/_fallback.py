"""When nothing reached the engine: the tasks run in this process, after a WARNING.

Nothing is lost when RQ or Celery cannot be reached in ``close()``: the request's tasks
run here, inline (their events say ``fallback``) or on the backend's ``fallback`` (an
:class:`~bgtask.OffloadPool`, say), and the WARNING names them and says why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ._collection import names_of

if TYPE_CHECKING:
    from ._backend import Backend
    from ._request import RequestTasks

__all__ = ["describe_error", "run_here"]

logger: Final = logging.getLogger("bgtask")


def run_here(
    batch: RequestTasks,
    fallback: Backend | None,
    destination: str,
    error: BaseException | None,
    *,
    level: int = logging.WARNING,
) -> None:
    """Nothing was sent: run ``batch`` in this process (or ``fallback``), warning."""
    names = names_of(batch.tasks)
    logger.log(
        level,
        "could not enqueue %d background task(s) on %s (%s); running them in this "
        "process %s instead: %s",
        len(names),
        destination,
        describe_error(error),
        "inline" if fallback is None else f"with {type(fallback).__name__}",
        ", ".join(names),
    )
    if fallback is None:
        batch.run_for_request("fallback")
    else:
        fallback.submit(batch)


def describe_error(error: BaseException | None) -> str:
    return "no error" if error is None else f"{type(error).__name__}: {error}"
