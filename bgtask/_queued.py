"""A slow listener, told from a thread of its own so that no task or response waits on it.

Listeners are called where a transition happens: ``queued`` in the view, before the
response; ``started`` and the outcome in ``close()`` or on a pool thread. A listener that
does I/O (an HTTP call to an alerting service, a database insert) would hold the response
or a task. :class:`QueuedListener` puts each event in a bounded queue instead and delivers
them, in order, on a native thread named ``bgtask-listener``; when the queue is full, events
are dropped and counted, never waited for.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from ._events import report_failure
from ._native import allocate_lock, start_thread

if TYPE_CHECKING:
    from ._events import Listener, TaskEvent

__all__ = ["QueuedListener"]

logger: Final = logging.getLogger("bgtask")


class _Flush:
    """A marker in the queue: released once the events before it were delivered."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock: Any = allocate_lock()
        self.lock.acquire()


#: Taken to start a listener's thread, so two first events start one.
_starting: Final[Any] = allocate_lock()


class QueuedListener:
    """Calls ``listener`` with each event from a thread of its own, never from the task's.

    At most ``max_pending`` events wait; past that, events are dropped (``dropped`` counts
    them, the first drop is logged). ``flush(timeout)`` waits until every event told so far
    was delivered. In a forked child, the events the parent had not delivered are dropped.

    >>> heard = []
    >>> listener = QueuedListener(heard.append)
    >>> from bgtask import BackgroundTask, TaskEvent
    >>> listener(TaskEvent("queued", BackgroundTask(print), None, "inline", None))
    >>> listener.flush(timeout=5), [event.kind for event in heard]
    (True, ['queued'])
    """

    __slots__ = ("_lock", "_pending", "_pid", "_signalled", "_wake", "dropped", "listener")

    def __init__(self, listener: Listener, *, max_pending: int = 10_000) -> None:
        self.listener = listener
        #: Events dropped because ``max_pending`` were already waiting.
        self.dropped = 0
        # One place more than max_pending: a flush marker always fits.
        self._pending: deque[TaskEvent | _Flush] = deque(maxlen=max_pending + 1)
        self._pid = 0
        self._lock: Any = None
        self._wake: Any = None
        self._signalled = False

    def __call__(self, event: TaskEvent) -> None:
        self._tell(event, marker=False)

    def flush(self, timeout: float) -> bool:
        """Wait until every event told before this call was delivered; False on timeout."""
        done = _Flush()
        self._tell(done, marker=True)
        return bool(done.lock.acquire(timeout=timeout))

    def _tell(self, item: TaskEvent | _Flush, *, marker: bool) -> None:
        if self._pid != os.getpid():
            with _starting:
                if self._pid != os.getpid():
                    self._start()
        maxlen = self._pending.maxlen or 1
        with self._lock:
            if not marker and len(self._pending) >= maxlen - 1:
                self.dropped += 1
                first = self.dropped == 1
                wake = False
            else:
                self._pending.append(item)
                first = False
                wake = not self._signalled
                self._signalled = True
        if wake:
            self._wake.release()
        if first:
            logger.warning(
                "a queued task event listener (%r) is behind by %d events: dropping events "
                "until it catches up (QueuedListener.dropped counts them)",
                self.listener,
                maxlen - 1,
            )

    def _start(self) -> None:
        # First use in this process (or a forked child's: the parent's thread is not here).
        self._lock = allocate_lock()
        self._wake = allocate_lock()
        self._wake.acquire()
        self._signalled = False
        self._pending.clear()
        self._pid = os.getpid()
        start_thread(self._serve, name="bgtask-listener")

    def _serve(self) -> None:
        pid = self._pid
        while pid == os.getpid():
            self._wake.acquire()
            while True:
                # One at a time: what waits is what the queue holds, never more.
                with self._lock:
                    if not self._pending:
                        self._signalled = False
                        break
                    item = self._pending.popleft()
                if isinstance(item, _Flush):
                    item.lock.release()  # everything told before it was delivered
                    continue
                try:
                    self.listener(item)
                except Exception:
                    report_failure(self.listener)
