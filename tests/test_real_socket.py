"""The middleware behind a real socket (wsgiref's server on 127.0.0.1): what a client sees."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bgtask import BackgroundTaskMiddleware, get_background_tasks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

DEADLINE = 10.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server:
    """wsgiref on an ephemeral loopback port, serving a bounded number of requests."""

    def __init__(self, app: WSGIApplication, requests: int) -> None:
        self.httpd: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        self.httpd.timeout = DEADLINE
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self._serve, args=(requests,), daemon=True)
        self.thread.start()

    def _serve(self, requests: int) -> None:
        for _ in range(requests):
            self.httpd.handle_request()

    def stop(self) -> None:
        self.thread.join(DEADLINE)
        self.httpd.server_close()
        assert not self.thread.is_alive()


def test_client_has_the_whole_response_before_the_task_runs() -> None:
    """The task waits for the client to have read the body; it still completes."""
    body_read = threading.Event()
    task_done = threading.Event()

    def notify() -> None:
        # Blocks until the client has the body: if tasks ran before the response was
        # sent, the client would never get it and this would time out.
        assert body_read.wait(DEADLINE)
        task_done.set()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(notify)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"sent"]

    server = _Server(BackgroundTaskMiddleware(app), requests=1)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.read() == b"sent"
    assert not task_done.is_set()
    body_read.set()
    assert task_done.wait(DEADLINE)
    connection.close()
    server.stop()


def test_head_request_runs_the_tasks(events: list[str]) -> None:
    """HEAD: no body goes out, but the view's work happened, so its tasks run."""
    ran = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(events.append, environ["REQUEST_METHOD"])
        get_background_tasks().add_task(ran.set)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"body"]

    server = _Server(BackgroundTaskMiddleware(app), requests=1)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=DEADLINE)
    connection.request("HEAD", "/")
    response = connection.getresponse()
    assert response.status == 200
    assert response.read() == b""
    connection.close()
    assert ran.wait(DEADLINE)
    assert events == ["HEAD"]
    server.stop()


def test_client_disconnect_mid_stream_runs_the_tasks(events: list[str]) -> None:
    """The client hangs up during a long stream: the server closes, the tasks run."""
    ran = threading.Event()
    hung_up = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        get_background_tasks().add_task(events.append, "task")
        get_background_tasks().add_task(ran.set)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def stream() -> Iterator[bytes]:
            yield b"first chunk"
            assert hung_up.wait(DEADLINE)
            for _ in range(10_000):  # writes fail once the peer is gone
                yield b"x" * 65536

        return stream()

    server = _Server(BackgroundTaskMiddleware(app), requests=1)
    client = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
    client.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b"first chunk" not in received:
        chunk = client.recv(65536)
        assert chunk, "the server closed before the first chunk"
        received += chunk
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # an abortive close: RST, as a browser tab being closed
    hung_up.set()
    assert ran.wait(DEADLINE)
    assert events == ["task"]
    server.stop()
