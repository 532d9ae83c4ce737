"""Shared fixtures: the bgtask logger captured at DEBUG for every test that asks."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Imported only where a test means to catch it being imported (never by collection).
collect_ignore = ["import_side_effect.py"]


@pytest.fixture
def bgtask_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, recording the ``bgtask`` logger from DEBUG up."""
    with caplog.at_level(logging.DEBUG, logger="bgtask"):
        yield caplog
