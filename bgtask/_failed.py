"""What a job raises when one of its tasks did not succeed, so the engine shows why.

RQ keeps the exception's text and traceback in its failed job registry (and its dashboard),
Celery in its task failure (and Flower): the text names every task that did not succeed and
carries each failed task's own exception, type, message and traceback; the first one is
also the exception's ``__cause__``.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TasksFailed"]


class TasksFailed(Exception):
    """Raised by a job whose collection did not fully succeed, so the engine sees a failure.

    The tasks' own exceptions are logged on the ``bgtask`` logger as they happen, and are in
    the text of this one.

    >>> print(TasksFailed.naming(["myapp.tasks.send_welcome_email"]))
    1 background task(s) did not succeed (failed, or skipped after a failure): myapp.tasks...
    """

    @classmethod
    def naming(
        cls, names: Sequence[str], failures: Sequence[tuple[str, BaseException]] = ()
    ) -> TasksFailed:
        """The failure of a job whose tasks ``names`` did not succeed; ``failures`` are the
        exceptions of those that failed, by task name."""
        text = (
            f"{len(names)} background task(s) did not succeed (failed, or skipped after a "
            f"failure): {', '.join(names)}"
        )
        for name, error in failures:
            shown = "".join(traceback.format_exception(error)).rstrip()
            text += f"\n\n{name} failed:\n{shown}"
        failed = cls(text)
        if failures:
            failed.__cause__ = failures[0][1]
        return failed
