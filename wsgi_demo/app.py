"""A plain WSGI app whose requests queue a background task, served by ``make demo``.

``curl -i http://127.0.0.1:8000/send-notification/you@example.com`` answers at once; the
server log shows the task running afterwards.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from bgtask import BackgroundTaskMiddleware, get_background_tasks

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("wsgi_demo")


def write_notification(email: str, message: str = "") -> None:
    """Pretend to send a notification, slowly, after the response has gone out."""
    time.sleep(0.5)
    logger.warning("notification sent (%d characters)", len(email) + len(message))


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/send-notification/<email>`` queues a task; anything else says how to use it."""
    path: str = environ.get("PATH_INFO", "/")
    prefix = "/send-notification/"
    if path.startswith(prefix):
        get_background_tasks().add_task(
            write_notification, path[len(prefix) :], message="some notification"
        )
        body = b'{"message": "Notification sent in the background"}\n'
        content_type = "application/json"
    else:
        body = b"try /send-notification/you@example.com\n"
        content_type = "text/plain"
    start_response(
        "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    )
    return [body]


app = BackgroundTaskMiddleware(application)
