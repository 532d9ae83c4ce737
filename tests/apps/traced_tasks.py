"""The task of the traced RQ test: imported by the test (web side) and the worker."""

from __future__ import annotations


def traced_task(tag: str) -> None:
    """A task whose span the test looks for."""
