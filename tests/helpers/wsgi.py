"""A tiny in-process WSGI driver: call an app as a server would, step by step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment


class Call:
    """One request: the environ, what start_response got, and the returned iterable."""

    def __init__(self, app: WSGIApplication, **environ: Any) -> None:
        self.environ: WSGIEnvironment = {"QUERY_STRING": "", **environ}
        setup_testing_defaults(self.environ)
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.result: Iterable[bytes] = app(self.environ, self._start_response)

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status, self.headers = status, headers
        return lambda data: None

    def body(self) -> bytes:
        """Iterate the whole body, as a server writes it."""
        return b"".join(self.result)

    def close(self) -> None:
        """Call close(), as a server does once the body is sent."""
        close = getattr(self.result, "close", None)
        if close is not None:
            close()

    def serve(self) -> bytes:
        """Iterate then close, like a server; return the body."""
        try:
            return self.body()
        finally:
            self.close()


def serve(app: WSGIApplication, **environ: Any) -> bytes:
    """One whole request through ``app``."""
    return Call(app, **environ).serve()


def text_app(body: bytes = b"ok") -> WSGIApplication:
    """A WSGI app answering ``body`` with a Content-Length."""

    def app(environ: WSGIEnvironment, start_response: Any) -> list[bytes]:
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]

    return app
