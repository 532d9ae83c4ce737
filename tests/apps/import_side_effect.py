"""A module that must never be imported because a message named it.

Importing it writes the file ``$BGTASK_TEST_IMPORT_MARKER`` (when set): the worker tests
name it in crafted payloads and check that the file never appears.
"""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("BGTASK_TEST_IMPORT_MARKER")
if _marker:
    Path(_marker).write_text("imported\n")


def run() -> None:
    """What a crafted payload names."""
