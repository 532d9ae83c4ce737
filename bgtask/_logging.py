"""The ``bgtask`` logger, as a listener of the task events.

=============  =======  ==============================================================
event          level    line
=============  =======  ==============================================================
started        DEBUG    background task NAME started
succeeded      DEBUG    background task NAME finished in N ms
failed         ERROR    background task NAME failed (with the traceback)
skipped        WARNING  background task NAME skipped: an earlier task ... failed
discarded      WARNING  background task NAME discarded: REASON (DEBUG under capture)
cut            ERROR    background task NAME cut: REASON
handed_off     DEBUG    background task NAME handed off to DESTINATION
retrying       WARNING  background task NAME failed, retrying: attempt N of M in S s
                        (with the traceback)
timed_out      ERROR    background task NAME timed out: its deadline of S s passed; ...
overdue        WARNING  background task NAME overdue: still running after S s, ...
=============  =======  ==============================================================

Lines name the function, never argument values. Each record carries ``task``, ``event``,
``mode``, ``duration`` (seconds, None until the task ended) and ``request_id`` (None for a
task no request queued) as attributes, for JSON formatters and structlog.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._events import Kind, TaskEvent

__all__ = ["CAPTURED", "log_event", "logs"]

logger: Final = logging.getLogger("bgtask")

#: The reason of a discard that a test asked for (``capture_tasks(run=False)``): quiet.
CAPTURED: Final = "capture_tasks(run=False) does not run tasks"

_LEVELS: Final[dict[Kind, int]] = {
    "queued": logging.NOTSET,  # not logged: every request would say it
    "started": logging.DEBUG,
    "succeeded": logging.DEBUG,
    "failed": logging.ERROR,
    "skipped": logging.WARNING,
    "discarded": logging.WARNING,
    "cut": logging.ERROR,
    "handed_off": logging.DEBUG,
    "retrying": logging.WARNING,
    "timed_out": logging.ERROR,
    "overdue": logging.WARNING,
}


def logs(kind: Kind) -> bool:
    """Whether an event of ``kind`` would be logged now (its level is enabled)."""
    level = _LEVELS[kind]
    # A level's highest possible value decides (a test's quiet discard logs lower, at DEBUG,
    # and log_event checks that one): enabled at WARNING is enabled whenever DEBUG is.
    return bool(level) and logger.isEnabledFor(level)


def log_event(event: TaskEvent) -> None:
    """Log ``event`` on the ``bgtask`` logger, at its level (see the table above)."""
    kind = event.kind
    level = _LEVELS[kind]
    if kind == "discarded" and event.reason == CAPTURED:
        level = logging.DEBUG
    if not level or not logger.isEnabledFor(level):
        return
    duration = event.duration
    extra = {
        "task": event.name,
        "event": kind,
        "mode": event.mode,
        "duration": duration,
        "request_id": event.request_id,
    }
    if kind == "failed":
        error = event.error
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        logger.error("background task %s failed", event.name, exc_info=exc_info, extra=extra)
    elif kind == "succeeded":
        milliseconds = (duration or 0.0) * 1000
        logger.debug(
            "background task %s finished in %.3f ms", event.name, milliseconds, extra=extra
        )
    elif kind == "retrying":
        error = event.error
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        logger.warning(
            "background task %s failed, retrying: %s",
            event.name,
            event.reason,
            exc_info=exc_info,
            extra=extra,
        )
    elif kind == "handed_off":
        logger.debug("background task %s handed off to %s", event.name, event.reason, extra=extra)
    elif event.reason is not None:
        said = kind.replace("_", " ")  # "timed out"
        logger.log(level, "background task %s %s: %s", event.name, said, event.reason, extra=extra)
    else:
        logger.log(level, "background task %s %s", event.name, kind, extra=extra)
