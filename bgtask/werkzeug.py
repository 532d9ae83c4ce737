"""``response.background`` on Werkzeug responses (Ellar's style), explicitly.

Set ``background`` on a :class:`BackgroundResponse` (or a response class with
:class:`BackgroundResponseMixin`) and its tasks run after the response was sent, after the
tasks the request queued::

    from werkzeug.wrappers import Request
    from bgtask.werkzeug import BackgroundResponse

    @Request.application
    def app(request):
        response = BackgroundResponse("Signup successful")
        response.background = BackgroundTask(send_welcome_email, email="a@b.c")
        return response

    app = BackgroundTaskMiddleware(app)

Flask needs none of this: ``BgTask`` reads ``background`` from every response a view
returns (``bgtask.flask.BackgroundResponse`` only adds the typed attribute). An app that
cannot change its response class may call :func:`enable_response_background` once at
startup, which wraps ``werkzeug.wrappers.Response.__call__`` for the whole process: bgtask
never does that on its own, and no import changes a Werkzeug class.
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Final

from ._extras import missing

try:
    from werkzeug.wrappers import Response
except ImportError as error:  # a clear message naming the extra
    raise missing("bgtask.werkzeug", "werkzeug", "werkzeug") from error

from ._collection import BackgroundTasks, check_item
from ._current import BACKGROUND_KEY, ENVIRON_KEY
from ._request import RESPONSE_STAGE, RequestTasks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ._task import BackgroundTask

__all__ = [
    "BackgroundResponse",
    "BackgroundResponseMixin",
    "attach_response_background",
    "enable_response_background",
]

logger: Final = logging.getLogger("bgtask")

_MARKER: Final = "__bgtask_response_background__"


class BackgroundResponseMixin:
    """Gives a Werkzeug or Flask response class a typed ``background`` that bgtask runs.

    >>> class MyResponse(BackgroundResponseMixin, Response): ...
    >>> MyResponse("ok").background is None
    True
    """

    background: BackgroundTask | BackgroundTasks | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        attach_response_background(self, environ)
        return super().__call__(environ, start_response)  # type: ignore[misc,no-any-return]


class BackgroundResponse(BackgroundResponseMixin, Response):
    """A Werkzeug ``Response`` whose ``background`` runs after it was sent.

    >>> from bgtask import BackgroundTask
    >>> response = BackgroundResponse("Signup successful")
    >>> response.background = BackgroundTask(print, "welcome")
    """


def attach_response_background(response: object, environ: WSGIEnvironment) -> None:
    """Queue ``response.background`` (if any) after the request's tasks; once per request.

    Raises ``TypeError`` for a ``background`` that is not a task or a collection.
    """
    background = getattr(response, "background", None)
    if background is None or environ.get(BACKGROUND_KEY) is response:
        return
    tasks: RequestTasks | None = environ.get(ENVIRON_KEY)
    if tasks is None:
        logger.warning(
            "response.background is set but the app has no BackgroundTaskMiddleware: "
            "its tasks will not run"
        )
        return
    check_item(background)
    environ[BACKGROUND_KEY] = response
    # Bound to this request's context: one response object (and its task) may be reused.
    tasks.attach(background.in_context(contextvars.copy_context()), stage=RESPONSE_STAGE)


def enable_response_background() -> None:
    """Make every ``werkzeug.wrappers.Response``'s ``background`` run after it is sent.

    Wraps ``Response.__call__`` for the whole process (idempotent): call it once at
    startup, or use :class:`BackgroundResponse` instead, which changes nothing global.

    >>> enable_response_background()
    """
    original = Response.__call__
    if getattr(original, _MARKER, False):
        return

    def __call__(
        self: Response, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        attach_response_background(self, environ)
        return original(self, environ, start_response)

    setattr(__call__, _MARKER, True)
    __call__.__doc__ = original.__doc__
    Response.__call__ = __call__  # type: ignore[method-assign]
