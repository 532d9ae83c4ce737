"""In-process WSGI calls as a server makes them: call, iterate the body, close it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from wsgiref.util import FileWrapper

from werkzeug.test import EnvironBuilder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "2")]


def environ_template(path: str = "/") -> WSGIEnvironment:
    """A GET request's environ, with a ``wsgi.file_wrapper`` as gunicorn and wsgiref set."""
    environ = EnvironBuilder(path=path, headers=[("User-Agent", "bench")]).get_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    return environ


def send_welcome_email(to: str) -> None:
    """A task function importable by name (RQ and Celery workers need one); a no-op."""


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def serve_once(app: WSGIApplication, environ: WSGIEnvironment) -> None:
    """One request: a fresh environ, the call, the body read, ``close()`` if it has one."""
    result: Iterable[bytes] = app(environ.copy(), start_response)
    try:
        for _chunk in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def timed_requests(app: WSGIApplication, path: str = "/") -> Callable[[int], float]:
    """A contender for :func:`bench._common.interleave`: ``n`` requests, timed."""
    environ = environ_template(path)

    def run(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            serve_once(app, environ)
        return time.perf_counter() - started

    return run


def plain_app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    """The bare app: a list body, the common case."""
    start_response("200 OK", HEADERS)
    return [b"ok"]


def streaming_app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    """A generator body of three chunks (the per-chunk path of a wrapper)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _chunks()


def _chunks() -> Iterable[bytes]:
    yield b"o"
    yield b"k"
    yield b"\n"
