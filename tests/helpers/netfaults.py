"""Network faults on ephemeral 127.0.0.1 ports, made in the test and closed by it.

:class:`SilentServer` accepts connections and never answers (a hung broker).
:class:`Proxy` stands in front of a real server and forwards both ways until told to
withhold: the server's replies (``withhold_replies_after``: what the client sends still
arrives), or everything one connection sends from a marker on (``hold_after``: bytes in
flight, applied late by ``release``). Threads block in ``recv``; ``close()`` shuts every
socket down, which wakes them, and joins them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

JOIN_TIMEOUT = 10.0


class _Listener:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.closed = False
        self._start(self._accept)

    def _start(self, target: Callable[..., object], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            with self.lock:
                closed = self.closed
                if not closed:
                    self.sockets.append(client)
            if closed:
                client.close()
                return
            self.accepted(client)

    def accepted(self, client: socket.socket) -> None:
        """Hold on to ``client`` and say nothing."""

    def close(self) -> None:
        with self.lock:
            self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.sock.close()
        with self.lock:
            sockets, threads = list(self.sockets), list(self.threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SilentServer(_Listener):
    """Accepts every connection and never sends a byte: ``url`` for a client to hang on."""

    def connections(self) -> int:
        with self.lock:
            return len(self.sockets)


class _Pipe:
    """One client connection through the proxy, and what it holds back."""

    def __init__(self) -> None:
        self.held_up: list[bytes] = []  # client -> server, not forwarded yet
        self.holding = False


class Proxy(_Listener):
    """A TCP proxy in front of ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._withhold_marker: bytes | None = None
        self._withholding = False
        self._hold_marker: bytes | None = None
        self._pipes: list[tuple[_Pipe, socket.socket]] = []
        super().__init__()

    def withhold_replies_after(self, marker: bytes) -> None:
        """Once a client sends ``marker``, drop every reply, on every connection."""
        self._withhold_marker = marker

    def hold_after(self, marker: bytes) -> None:
        """The connection that sends ``marker`` next: hold what it sends from there on."""
        self._hold_marker = marker

    def release(self) -> None:
        """Forward everything held, and hold nothing more."""
        with self.lock:  # held while sending: nothing overtakes what was held
            self._hold_marker = None
            for pipe, server in self._pipes:
                held, pipe.held_up, pipe.holding = pipe.held_up, [], False
                for chunk in held:
                    _send(server, chunk)

    def drop_connections(self) -> None:
        """End every connection made so far, both ways (the server restarted); keep
        accepting new ones."""
        with self.lock:
            sockets = list(self.sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accepted(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        pipe = _Pipe()
        with self.lock:
            self.sockets.append(server)
            self._pipes.append((pipe, server))
        self._start(self._up, pipe, client, server)
        self._start(self._down, client, server)

    def _up(self, pipe: _Pipe, client: socket.socket, server: socket.socket) -> None:
        while chunk := _recv(client):
            with self.lock:
                if self._withhold_marker is not None and self._withhold_marker in chunk:
                    self._withholding = True
                if self._hold_marker is not None and self._hold_marker in chunk:
                    self._hold_marker, pipe.holding = None, True
                if pipe.holding:
                    pipe.held_up.append(chunk)
                    continue
            _send(server, chunk)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _down(self, client: socket.socket, server: socket.socket) -> None:
        while chunk := _recv(server):
            with self.lock:
                if self._withholding or any(
                    pipe.holding for pipe, sock in self._pipes if sock is server
                ):
                    continue  # the reply is lost on the way
            _send(client, chunk)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
