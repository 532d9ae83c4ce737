"""A hand-off to an engine under a deadline of bgtask's own: connect first, then send.

An engine's client can block far longer than ``close()`` may: ``Redis.from_url`` waits 5 s
for a broker that accepts and never answers, Celery over a ``redis://`` broker forever. A
hand-off is a generator: what runs before its ``yield`` connects and sends nothing, what
runs after it sends the job. Its outcome says on which side of that line it stopped:
``SENT``; ``NOT_SENT`` (the tasks may run here); ``UNKNOWN`` (the job may have reached
the engine: the backend decides, so that no task runs twice).

A blocking socket call cannot be interrupted in its own thread, so the hand-off runs on
a native helper thread (``_helpers.py``: reused, not one per request) while the caller
waits on a native lock with the deadline. A helper still running past its deadline is
*stuck*; while ``MAX_STUCK`` are, new hand-offs are refused at once (``HandoffBusy``,
nothing sent) instead of piling up threads.

Under gevent's monkey-patching the helper would fail: a socket opened in one greenlet
cannot be used from another thread ("Cannot switch to a different thread", measured with
redis-py 8), and a native wait blocks every greenlet of the process. Sockets are
cooperative there, so the hand-off runs in the calling greenlet under ``gevent.Timeout``,
which interrupts it at its first blocking call, and nothing is left behind.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Final

from ._helpers import helpers
from ._native import allocate_lock

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    Phases = Callable[[], Generator[None, None, None]]

__all__ = ["MAX_STUCK", "NOT_SENT", "SENT", "UNKNOWN", "Handoff", "HandoffBusy", "HandoffTimeout"]

logger: Final = logging.getLogger("bgtask")

SENT: Final = "sent"
NOT_SENT: Final = "not sent"
UNKNOWN: Final = "unknown"
#: Stuck helpers one backend tolerates before it stops trying (each holds a thread).
MAX_STUCK: Final = 1

_CONNECTING, _SENDING, _ABANDONED, _FINISHED = range(4)


class HandoffTimeout(TimeoutError):
    """The engine did not answer within the hand-off's deadline."""


class HandoffBusy(Exception):
    """A hand-off was not tried: earlier ones are stuck past their deadline."""


class _Attempt:
    __slots__ = ("done", "error", "lock", "outcome", "phase", "stuck")

    def __init__(self) -> None:
        self.lock: Any = allocate_lock()
        self.done: Any = allocate_lock()
        self.done.acquire()
        self.phase = _CONNECTING
        self.outcome: str = UNKNOWN
        self.error: BaseException | None = None
        self.stuck = False


class Handoff:
    """Runs hand-offs under a deadline of ``timeout`` seconds and counts the stuck ones.

    >>> def phases():
    ...     yield  # connected
    ...     print("sent")
    >>> Handoff(0.5).run(phases)
    sent
    ('sent', None)
    """

    __slots__ = ("_lock", "_pid", "_stuck", "timeout")

    def __init__(self, timeout: float) -> None:
        if not isinstance(timeout, int | float) or not 0 < timeout < float("inf"):
            msg = f"handoff_timeout must be a number of seconds above zero, got {timeout!r}"
            raise ValueError(msg)
        self.timeout = float(timeout)
        self._lock: Any = allocate_lock()
        self._pid = os.getpid()
        self._stuck = 0

    def stuck(self) -> int:
        """How many of this process's hand-offs are still running past their deadline."""
        if self._pid != os.getpid():  # a forked child has none of its parent's threads
            with self._lock:
                self._pid, self._stuck = os.getpid(), 0
        return self._stuck

    def run(
        self, phases: Phases, *, timeout: float | None = None, refuse_when_stuck: bool = True
    ) -> tuple[str, BaseException | None]:
        """Run ``phases`` (connect, ``yield``, send); return the outcome and its error."""
        timeout = self.timeout if timeout is None else timeout
        if refuse_when_stuck and self.stuck() >= MAX_STUCK:
            return NOT_SENT, HandoffBusy(f"{self._stuck} earlier hand-off(s) still stuck")
        if _cooperative():
            return _run_in_greenlet(phases, timeout)
        attempt = _Attempt()
        helpers.start(functools.partial(self._helper, attempt, phases))
        attempt.done.acquire(True, timeout)
        with attempt.lock:
            if attempt.phase == _FINISHED:
                return attempt.outcome, attempt.error
            attempt.stuck = True
            self._count_stuck(+1)
            error = HandoffTimeout(f"no answer within {timeout:g} s")
            if attempt.phase == _CONNECTING:
                attempt.phase = _ABANDONED  # the helper will send nothing
                return NOT_SENT, error
            return UNKNOWN, error

    def _helper(self, attempt: _Attempt, phases: Phases, park: Callable[[], None]) -> None:
        outcome, error = UNKNOWN, None
        try:
            outcome, error = _run_phases(phases, attempt)
        except BaseException as exc:  # a helper thread has nobody to raise to
            error = exc
        finally:
            with attempt.lock:
                if attempt.phase != _ABANDONED:
                    attempt.phase = _FINISHED
                attempt.outcome, attempt.error = outcome, error
                stuck = attempt.stuck
            park()  # idle before the caller wakes: its next hand-off finds this thread
            attempt.done.release()
            if stuck:
                self._count_stuck(-1)
                logger.debug("a hand-off past its deadline ended: %s (%r)", outcome, error)

    def _count_stuck(self, change: int) -> None:
        with self._lock:
            if self._pid == os.getpid():
                self._stuck = max(0, self._stuck + change)


def _run_phases(phases: Phases, attempt: _Attempt | None) -> tuple[str, BaseException | None]:
    steps = phases()
    try:
        next(steps)
    except StopIteration:
        return SENT, None
    except Exception as exc:
        return NOT_SENT, exc
    if attempt is not None:
        with attempt.lock:
            abandoned = attempt.phase == _ABANDONED
            if not abandoned:
                attempt.phase = _SENDING
        if abandoned:
            steps.close()  # past the deadline while connecting: never send
            return NOT_SENT, None
    try:
        next(steps)
    except StopIteration:
        return SENT, None
    except Exception as exc:
        return UNKNOWN, exc
    steps.close()
    msg = "a hand-off must yield exactly once, between connecting and sending"
    raise RuntimeError(msg)


def _cooperative() -> bool:
    """Whether gevent has made this process's sockets cooperative."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def _run_in_greenlet(phases: Phases, timeout: float) -> tuple[str, BaseException | None]:
    from gevent import Timeout

    steps = phases()
    timer = Timeout(timeout)
    timer.start()
    sending = False
    try:
        next(steps)
        sending = True
        next(steps)
    except StopIteration:
        return SENT, None
    except Timeout as exc:
        if exc is not timer:
            raise
        # The deadline, as the thread path says it: not the time measured, which a loaded
        # hub rounds up (0.51 s for a 0.5 s deadline).
        error = HandoffTimeout(f"no answer within {timeout:g} s")
        return (UNKNOWN if sending else NOT_SENT), error
    except Exception as exc:
        return (UNKNOWN if sending else NOT_SENT), exc
    finally:
        timer.close()
    steps.close()
    msg = "a hand-off must yield exactly once, between connecting and sending"
    raise RuntimeError(msg)
