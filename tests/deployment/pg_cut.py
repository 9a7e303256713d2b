"""A TCP proxy in front of PostgreSQL that loses one COMMIT on purpose: the connection is cut as the
COMMIT goes out (the server never sees it: the transaction rolls back) or right after the server
answered it (committed, but its client never hears so) — what a restart or a crash of the database
does to a request at the worst moment. With the cut, every other connection through the proxy can
be cut too and new ones refused for a while, as a restarting database refuses them.

It reads the protocol's framing only (a type byte and a length), so clients must not ask for TLS
or GSSAPI encryption: `proxied_url` adds `sslmode=disable&gssencmode=disable`.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import sqlalchemy as sa

# Where an armed cut falls: before the COMMIT reaches the server, or once the server answered it.
BEFORE, AFTER = "before", "after"


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _message(sock: socket.socket) -> bytes:
    """One typed protocol message (type byte, length, body), whole."""
    head = _read_exact(sock, 5)
    (length,) = struct.unpack("!i", head[1:])
    return head + _read_exact(sock, length - 4)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@dataclass
class Cutter:
    target: tuple[str, int]
    listener: socket.socket
    cuts: list[bytes] = field(default_factory=list)  # the messages cut at
    answered: list[bool] = field(default_factory=list)  # by cut after: whether the server answered it
    _armed: tuple[str, tuple[bytes, ...], float] | None = None
    _down_until: float = 0.0
    _pairs: set[tuple[socket.socket, socket.socket]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def proxied_url(self, url: str) -> str:
        return (
            sa.make_url(url)
            .set(host="127.0.0.1", port=self.port, query={"sslmode": "disable", "gssencmode": "disable"})
            .render_as_string(hide_password=False)
        )

    def arm(self, where: str, *markers: bytes, down_s: float = 0.0) -> None:
        """Cut the next message that holds COMMIT and each of `markers`, `where`; if `down_s`, cut
        every other connection then too, and refuse new ones for `down_s` seconds."""
        with self._lock:
            self._armed = (where, markers, down_s)

    def _take(self, message: bytes) -> tuple[str, float] | None:
        """Where to cut at `message`, and for how long to go down afterwards; None: not here."""
        with self._lock:
            if self._armed is None or b"COMMIT" not in message:
                return None
            where, markers, down_s = self._armed
            if not all(marker in message for marker in markers):
                return None
            self._armed = None
            self.cuts.append(message)
            return where, down_s

    def _go_down(self, down_s: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + down_s
            for pair in self._pairs:
                _close(*pair)

    def wait_up(self) -> None:
        """Return once the proxy takes connections again (at once if it never went down)."""
        with self._lock:
            left = self._down_until - time.monotonic()
        time.sleep(max(0.0, left))

    def _down(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._down():
                _close(client)  # as a database that is shutting down or starting up
            else:
                threading.Thread(target=self._pair, args=(client,), daemon=True).start()

    def _pair(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            _close(client)
            return
        pair = (client, server)
        with self._lock:
            self._pairs.add(pair)
        dropping, answered = threading.Event(), threading.Event()
        try:
            if self._down():  # went down between the accept and now
                return
            args = (server, client, dropping, answered)
            threading.Thread(target=_downstream, args=args, daemon=True).start()
            (length,) = struct.unpack("!i", _read_exact(client, 4))  # the startup message: untyped
            server.sendall(struct.pack("!i", length) + _read_exact(client, length - 4))
            while True:
                message = _message(client)
                cut = self._take(message)
                if cut is None:
                    server.sendall(message)
                    continue
                where, down_s = cut
                if where == AFTER:
                    dropping.set()
                    server.sendall(message)
                    # the COMMIT's answer, read by `_downstream` and dropped
                    self.answered.append(answered.wait(10))
                # else never sent: the server sees its client go, and rolls back
                if down_s:
                    self._go_down(down_s)
                break
        except OSError:  # ConnectionError included: either side went
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            _close(client, server)


def _downstream(
    server: socket.socket, client: socket.socket, dropping: threading.Event, answered: threading.Event
) -> None:
    """The server's messages to the client; once `dropping`, none, up to the ReadyForQuery that
    ends the answer to the cut COMMIT."""
    try:
        while True:
            message = _message(server)
            if not dropping.is_set():
                client.sendall(message)
            elif message[:1] == b"Z":
                answered.set()
                return
    except OSError:
        pass


@contextmanager
def cutter(url: str) -> Iterator[Cutter]:
    """A `Cutter` in front of the PostgreSQL server of `url`, on a free loopback port."""
    parsed = sa.make_url(url)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    proxy = Cutter((parsed.host or "127.0.0.1", parsed.port or 5432), listener)
    threading.Thread(target=proxy.serve, daemon=True).start()
    try:
        yield proxy
    finally:
        _close(listener)
        with proxy._lock:
            for pair in proxy._pairs:
                _close(*pair)
