"""Flask's app context around each background task, as the runner's task scope.

Flask pops the request's app and request contexts before the server closes the response,
so a task would find no ``current_app``. Each task runs in a fresh ``app.app_context()``:
``current_app``, ``app.config`` and extensions work, ``g`` is a new one, and
``teardown_appcontext`` runs right after the task (that is what returns database
sessions). The task keeps the context variables it captured (a request id) except Flask's
own, so ``has_request_context()`` is false and ``flask.request`` raises.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Final

from flask.globals import _cv_app, _cv_request

if TYPE_CHECKING:
    import flask

    from ._task import BackgroundTask

__all__ = ["AppContextScope"]

#: Flask's own context variables: a task gets a fresh app context and no request.
_FLASK_VARIABLES: Final[frozenset[contextvars.ContextVar[Any]]] = frozenset({_cv_app, _cv_request})


class AppContextScope:
    """The task scope of ``app``: called with a task, the context manager it runs in."""

    __slots__ = ("app",)

    def __init__(self, app: flask.Flask) -> None:
        self.app = app

    def __call__(self, task: BackgroundTask) -> _FreshAppContext:
        return _FreshAppContext(self.app, task)


class _FreshAppContext:
    """A new app context of ``app``, pushed in a new context for one task."""

    __slots__ = ("app", "app_context", "context", "task")

    def __init__(self, app: flask.Flask, task: BackgroundTask) -> None:
        self.app = app
        self.task = task

    def __enter__(self) -> contextvars.Context:
        captured = self.task.context
        carried = [] if captured is None else [
            (variable, value) for variable, value in captured.items()
            if variable not in _FLASK_VARIABLES
        ]  # fmt: skip
        self.context = contextvars.Context()
        self.app_context = self.app.app_context()
        self.context.run(_enter, carried, self.app_context)
        return self.context

    def __exit__(self, *exc_info: object) -> None:
        error = exc_info[1]
        self.context.run(self.app_context.pop, error if isinstance(error, BaseException) else None)


def _enter(carried: list[tuple[contextvars.ContextVar[Any], Any]], app_context: Any) -> None:
    for variable, value in carried:
        variable.set(value)
    app_context.push()
