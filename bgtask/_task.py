"""One background task: a callable and its arguments, checked when queued, and its lifecycle.

The same object is the task's handle: ``add_task`` returns it, and it tells where the task
is (``state``), since when (``queued_at``, ``started_at``, ``ended_at``, wall-clock seconds)
and, for a failure, what it raised (``error``). Once a task queued by a request has ended,
it lets go of its function, arguments and context, so a handle kept around holds no
request data. What runs a task lives above this module (``bgtask._run``), which installs
itself here: the task model imports no event loop and no integration.
"""

from __future__ import annotations

import contextvars
import copy
import itertools
import time
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeAlias

from ._callables import describe, is_async_callable
from ._clock import wall_time
from ._options import options_of
from ._signature import check_arguments

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BackgroundTask", "State", "install_direct_runner"]

P = ParamSpec("P")

#: Where a task is in its lifecycle.
State: TypeAlias = Literal[
    "created", "queued", "running", "retrying", "succeeded", "failed", "timed_out", "skipped",
    "discarded", "cut", "handed_off",
]  # fmt: skip


_ids: Final = itertools.count(1)
#: The context of every task that let go of its own (empty; nothing runs in it).
_RELEASED: Final = contextvars.Context()
_run_directly: Callable[[BackgroundTask], None] | None = None


def install_direct_runner(runner: Callable[[BackgroundTask], None]) -> None:
    """How calling a task runs it: installed by ``bgtask._run`` when bgtask is imported."""
    global _run_directly
    _run_directly = runner


class BackgroundTask:
    """A function and its arguments, to run after the response has been sent.

    ``func`` may be a plain function, an ``async def`` coroutine function, a
    ``functools.partial`` of either, or an object whose ``__call__`` is either. Whether it
    is async is decided here, once. The arguments are checked against ``func``'s signature
    now, so a mistake raises ``TypeError`` in the request that made it, and the current
    ``contextvars`` context is captured: the task runs in a copy of it.

    Calling the task runs it and returns when it has finished: a sync function directly, an
    async one on bgtask's private event loop. Exceptions propagate from a direct call; a
    :class:`BackgroundTasks` collection catches and logs them instead.

    >>> def send_email(to: str, subject: str = "") -> None: ...
    >>> task = BackgroundTask(send_email, "user@example.com", subject="Welcome")
    >>> task
    <BackgroundTask bgtask.send_email>
    >>> task()
    """

    __slots__ = (
        "_ended",
        "_id",
        "_name",
        "_queued",
        "_started",
        "args",
        "attempts",
        "context",
        "error",
        "func",
        "gate",
        "is_async",
        "kwargs",
        "options",
        "overdue",
        "state",
    )

    def __init__(self, func: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        if not callable(func):
            # The type only: a misplaced argument value must not reach an error log.
            msg = f"a background task needs a callable, got an object of type {type(func).__name__}"
            raise TypeError(msg)
        problem = check_arguments(func, args, kwargs)
        if problem is not None:
            msg = f"cannot queue {describe(func)}: {problem}"
            raise TypeError(msg)
        self.func: Callable[..., object] = func
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.is_async: bool = is_async_callable(func)
        #: The function's deadline and retries (``@bgtask.task``), or None.
        self.options = options_of(func)
        #: How many times it started (retries included).
        self.attempts = 0
        #: Whether it ran past its deadline (a sync task cannot be interrupted).
        self.overdue = False
        #: Asked when its turn comes: None, it runs; a reason, it is discarded instead (a
        #: transaction it waits for did not commit: ``bgtask.sqlalchemy``).
        self.gate: Callable[[], str | None] | None = None
        self.context: contextvars.Context = contextvars.copy_context()
        self._name: str | None = None
        self._id = 0
        #: Where the task is; see :data:`State`.
        self.state: State = "created"
        #: What the task raised, for a failed task.
        self.error: BaseException | None = None
        self._queued = self._started = self._ended = 0.0  # monotonic; 0.0: not yet

    @property
    def name(self) -> str:
        """The function's qualified name, as it appears in logs (never argument values)."""
        name = self._name
        if name is None:
            name = self._name = describe(self.func)
        return name

    @property
    def id(self) -> int:
        """A number unique to this task in this process."""
        if not self._id:
            self._id = next(_ids)
        return self._id

    @property
    def queued_at(self) -> float | None:
        """When it was queued, in seconds since the epoch (None: not queued)."""
        return wall_time(self._queued)

    @property
    def started_at(self) -> float | None:
        """When it started running, in seconds since the epoch (None: it did not)."""
        return wall_time(self._started)

    @property
    def ended_at(self) -> float | None:
        """When it reached its final state, in seconds since the epoch (None: not yet)."""
        return wall_time(self._ended)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the task reached its final state here; True if it did in time.

        For tests and scripts (it polls; a request must never wait for its own tasks).

        >>> def noop() -> None: ...
        >>> BackgroundTask(noop).wait(0)
        False
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005
        while not self._ended:  # set once, when the task reached its final state
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.02)
        return True

    def __repr__(self) -> str:
        return f"<BackgroundTask {self.name}>"

    def __call__(self) -> None:
        """Run the task now and return when it has finished; its exceptions propagate."""
        assert _run_directly is not None, "bgtask._run installs the runner on import"
        _run_directly(self)

    def in_context(self, context: contextvars.Context) -> BackgroundTask:
        """A new task of the same function and arguments, to run in ``context``.

        Integrations attach one per request (a route's fixed tasks, a response's
        ``background``), so each request's run has a handle and a context of its own.
        """
        clone = copy.copy(self)  # the arguments were checked when this one was built
        clone.context = context
        clone._id = clone.attempts = 0
        clone.overdue = False
        clone.state, clone.error = "created", None
        clone._queued = clone._started = clone._ended = 0.0
        return clone

    def release(self) -> None:
        """Let go of the function, arguments and context (the task has ended for good)."""
        self.name  # noqa: B018 (computed before the function goes: the handle keeps it)
        self.func, self.args, self.kwargs = _released, (), {}
        self.context = _RELEASED
        self.gate = None  # it holds the request's collection


def _released(*args: object, **kwargs: object) -> None:
    """What a task that ended and let go of its function would call."""
    msg = "this background task has ended and no longer holds its function or arguments"
    raise RuntimeError(msg)
