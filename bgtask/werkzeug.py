"""``response.background`` on Werkzeug responses (and so on Flask's, which extend them).

Ellar's style: set ``background`` on the response you return, and the tasks run after it
was sent, after the tasks the request queued::

    from werkzeug.wrappers import Request, Response

    @Request.application
    def app(request):
        response = Response("Signup successful")
        response.background = BackgroundTask(send_welcome_email, email="a@b.c")
        return response

    app = BackgroundTaskMiddleware(app)

Werkzeug gives a response no hook for this, so :func:`enable_response_background` wraps
``werkzeug.wrappers.Response.__call__`` once per process. :class:`BackgroundTaskMiddleware`
calls it when Werkzeug is already imported, and the Flask extension always does: there is
normally nothing to call by hand.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Any, Final

from ._collection import RESPONSE_STAGE, check_item
from ._current import ENVIRON_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["enable_response_background"]

logger: Final = logging.getLogger("bgtask")

_MARKER: Final = "__bgtask_response_background__"


def enable_response_background() -> None:
    """Make a Werkzeug or Flask response's ``background`` attribute run after it is sent.

    Idempotent. ``background`` is a ``BackgroundTask`` or ``BackgroundTasks``; anything
    else raises ``TypeError`` in the request.

    >>> enable_response_background()
    """
    from werkzeug.wrappers import Response

    original = Response.__call__
    if getattr(original, _MARKER, False):
        return

    def __call__(
        self: Response, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        background = getattr(self, "background", None)
        if background is not None:
            _attach_response_background(background, environ)
        return original(self, environ, start_response)

    setattr(__call__, _MARKER, True)
    __call__.__doc__ = original.__doc__
    Response.__call__ = __call__  # type: ignore[method-assign]


def _attach_response_background(background: Any, environ: WSGIEnvironment) -> None:
    tasks = environ.get(ENVIRON_KEY)
    if tasks is None:
        logger.warning(
            "response.background is set but the app has no BackgroundTaskMiddleware: "
            "its tasks will not run"
        )
        return
    check_item(background)
    # Bound to this request's context: one response object (and its task) may be reused.
    tasks.attach(background.in_context(contextvars.copy_context()), stage=RESPONSE_STAGE)
