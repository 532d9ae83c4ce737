"""Connecting to Redis before an RQ enqueue, sending nothing; and RQ's duplicate-job error.

The connect step of an RQ hand-off takes a connection from the client's pool: a pooled one
is checked by redis-py (a closed one is reopened), a new one completes its handshake
(``HELLO``, or ``CLIENT SETINFO``), then goes back to the pool for the enqueue. A failure
or a hang up to there means no byte of the job was sent.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["connect", "is_duplicate"]


def connect(client: Redis) -> None:
    """Make sure ``client``'s pool holds a connection that is open and idle."""
    pool = client.connection_pool
    connection = pool.get_connection(*_command_name(type(pool)))
    pool.release(connection)


@functools.cache
def _command_name(pool_type: type[Any]) -> tuple[str, ...]:
    # redis-py before 5.3 requires a command name; 5.3 and later warn when given one.
    parameter = inspect.signature(pool_type.get_connection).parameters.get("command_name")
    required = parameter is not None and parameter.default is inspect.Parameter.empty
    return ("PING",) if required else ()


def is_duplicate(error: Exception) -> bool:
    """Whether ``error`` is RQ saying a job of that id exists (``unique=True``)."""
    import rq.exceptions

    duplicate = getattr(rq.exceptions, "DuplicateJobError", None)
    return duplicate is not None and isinstance(error, duplicate)
