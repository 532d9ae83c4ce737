"""The interpreter's own threads and locks, even under gevent's monkey-patching.

The private loop and the offload pool run in native threads and coordinate with native
locks: a patched ``threading.Thread`` would be a greenlet, and a patched lock taken from a
thread without a gevent hub would block the wrong scheduler.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["native"]


def native(module: str, name: str) -> Any:
    """The unpatched ``module.name``, even when gevent has monkey-patched it.

    >>> native("_thread", "allocate_lock")().acquire(False)
    True
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)
