"""Trace context across processes: what an engine's job carries so a worker's tasks link
back to the request that queued them.

The core knows no tracing library. An integration (``bgtask.otel``) installs an injector:
called in a task's own context when its job is encoded, it returns the W3C trace headers
(``traceparent``, ``tracestate``) of that context. On the worker, each task of the job runs
with those headers in :data:`queued_with`, where the integration reads them back. The
headers come from the broker, so the worker keeps only a few short printable strings.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["carrier_of", "install_injector", "queued_with", "valid_carrier"]

#: On a worker: the trace headers the running task was queued with (None: none came).
queued_with: Final[contextvars.ContextVar[dict[str, str] | None]] = contextvars.ContextVar(
    "bgtask_queued_with", default=None
)
_inject: Callable[[], dict[str, str]] | None = None
#: What a worker accepts of a job's headers: W3C's own are 55 and at most 512 characters.
_MAX_HEADERS: Final = 4
_MAX_NAME: Final = 64
_MAX_VALUE: Final = 512


def install_injector(inject: Callable[[], dict[str, str]] | None) -> None:
    """Have each task of an engine's job carry ``inject()``, called in the task's context."""
    global _inject
    _inject = inject


def carrier_of(context: contextvars.Context) -> dict[str, str] | None:
    """The trace headers of ``context``, for a job's entry; None without an injector.

    >>> carrier_of(contextvars.copy_context()) is None
    True
    """
    inject = _inject
    if inject is None:
        return None
    try:
        carrier = context.run(inject)
    except Exception:  # tracing never stops a hand-off
        return None
    return valid_carrier(carrier)


def valid_carrier(value: Any) -> dict[str, str] | None:
    """``value`` if it is a few short printable string headers, else None.

    >>> valid_carrier({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    {'traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'}
    >>> valid_carrier({"traceparent": "x" * 10_000}) is None
    True
    """
    if not isinstance(value, dict) or not value or len(value) > _MAX_HEADERS:
        return None
    for name, header in value.items():
        if not (
            isinstance(name, str)
            and isinstance(header, str)
            and 0 < len(name) <= _MAX_NAME
            and len(header) <= _MAX_VALUE
            and name.isprintable()
            and header.isprintable()
        ):
            return None
    return dict(value)
