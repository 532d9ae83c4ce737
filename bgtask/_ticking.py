"""The loop's selector: while timers are due soon, the loop wakes on a coarse tick.

With a few thousand offloaded async tasks a second, each sleeping 20 ms, asyncio would
wake its thread once per expiring timer and once per hand-off from a request thread, and
on a loaded server every wake-up is a fight for the GIL with the request threads. Rounded
up to a tick of :data:`TICK` seconds, the timers that expire within one tick are served
by one wake-up, and while the loop is known to wake within a tick, a hand-off needs no
wake-up of its own: the loop takes its inbox at every wake-up (``_loop``). A timer fires
at most one tick late, an offloaded task starts at most one tick after ``close()``.
"""

from __future__ import annotations

import math
import selectors
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["TICK", "TickingSelector"]

#: Seconds between the wake-ups of a loop with timers due (2 ms: well under the 5 ms
#: interval at which CPython hands the GIL over, so the tick adds no latency of its own
#: that the GIL would not add anyway).
TICK: Final = 0.002


class TickingSelector(selectors.BaseSelector):
    """``inner``, whose waits end on a tick boundary, and which says when it will wake.

    ``before_wait`` is called in the loop's thread before every wait, with whether the loop
    will wake within a tick; it returns whether something is waiting to be taken (then the
    selector does not wait at all). ``after_wait`` is called after every wait.
    """

    def __init__(
        self,
        inner: selectors.BaseSelector,
        before_wait: Callable[[bool], bool],
        after_wait: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._before_wait = before_wait
        self._after_wait = after_wait

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            # Up to the next tick boundary: timers expiring within one tick share a wake-up.
            now = time.monotonic()
            timeout = math.ceil((now + timeout) / TICK) * TICK - now
        soon = timeout is not None and timeout <= TICK
        if self._before_wait(soon):
            timeout = 0
        try:
            return self._inner.select(timeout)
        finally:
            self._after_wait()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()
