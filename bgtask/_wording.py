"""Counted nouns for log lines: ``1 task``, ``2 tasks``, never ``1 task(s)``."""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, in the plural unless ``count`` is one.

    >>> counted(1, "background task"), counted(3, "collection")
    ('1 background task', '3 collections')
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {plural or noun + 's'}"
