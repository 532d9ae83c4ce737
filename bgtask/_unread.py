"""Noticing a response ``background`` that nothing read, instead of losing it in silence.

A plain ``werkzeug.wrappers.Response`` returns a ``ClosingIterator`` whose close callbacks
include the response's own ``close``: that is how the response is found, without patching
Werkzeug or importing it. Read-only: it leads to a WARNING, never to running anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._current import BACKGROUND_KEY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["unread_background"]


def unread_background(app_iter: Any, environ: WSGIEnvironment) -> str | None:
    """What to tell the user when ``app_iter``'s response carries a ``background`` that
    no integration attached to the request, else None.

    >>> unread_background([b"a plain body"], {}) is None
    True
    """
    for callback in getattr(app_iter, "_callbacks", ()):
        response = getattr(callback, "__self__", None)
        if getattr(response, "background", None) is None:
            continue
        if environ.get(BACKGROUND_KEY) is response:
            return None
        return (
            f"response.background is set on a {type(response).__qualname__} that bgtask "
            "does not read, so its tasks will not run: return a "
            "bgtask.werkzeug.BackgroundResponse (or add BackgroundResponseMixin to your "
            "response class), or call bgtask.werkzeug.enable_response_background() once at "
            "startup"
        )
    return None
