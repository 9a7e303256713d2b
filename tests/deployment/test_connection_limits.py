"""Bounded requests and connections, over real sockets against a real `flexearn serve` (issue 11).

- A body over FLEXEARN_MAX_BODY_BYTES is answered 413 in the path's own envelope before anything
  authenticates it: a declared one without reading it, a chunked one as soon as it passes the limit.
- Three 100 MB bodies sent at once grow the server (its whole process tree) by less than 64 MB.
- A client is served within 1 s while 5,000 idle connections (half silent, half with a partial
  request line) are open on one worker.
- A slow header, a slow body, a silent connection and an idle keep-alive connection are cut
  within their timeouts (FLEXEARN_HEADER_TIMEOUT, FLEXEARN_BODY_TIMEOUT).

Every loop is bounded by a deadline; every socket is on loopback. The limits sit in front of the
database, so the envelope tests run on both databases and the heavy ones on SQLite only.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from flexearn.adapters.secrets import generate_master_key
from tests.server import server_process

OKX_PURCHASE = "/api/v5/finance/savings/purchase-redempt"
BITGET_SUBSCRIBE = "/api/v2/earn/savings/subscribe"
ADMIN_USERS = "/admin/v1/users"
LIMIT = 65536  # FLEXEARN_MAX_BODY_BYTES's default
TIMEOUT_S = 2.0  # the test servers' FLEXEARN_HEADER_TIMEOUT and FLEXEARN_BODY_TIMEOUT
CUT_BY_S = TIMEOUT_S + 2.0  # a cut is due by then, with room for a loaded 2-core machine
MB = 1024 * 1024
JSON = "Content-Type: application/json"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]  # what the server wrote: its JSON log lines

    def access_lines(self, path: str) -> list[dict[str, Any]]:
        self.log.seek(0)
        lines = [json.loads(line) for line in self.log.read().splitlines() if line.startswith(b"{")]
        return [line for line in lines if line.get("logger") == "flexearn.access" and line["path"] == path]


@contextlib.contextmanager
def serve(database_url: str, env: dict[str, str]) -> Iterator[Server]:
    with (
        tempfile.TemporaryFile() as log,
        server_process(database_url, generate_master_key(), env=env, log=log) as (proc, base),
    ):
        yield Server(proc, int(base.rsplit(":", 1)[1]), log)


@pytest.fixture(scope="module")
def server(module_database_url: str) -> Iterator[Server]:
    """Default limits, short timeouts; no data: nothing here gets as far as the database."""
    env = {"FLEXEARN_HEADER_TIMEOUT": str(TIMEOUT_S), "FLEXEARN_BODY_TIMEOUT": str(TIMEOUT_S)}
    with serve(module_database_url, env) as running:
        yield running


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SQLite, one worker, a header timeout longer than the tests that use it: idle connections
    stay open until the test closes them, so what is shown is capacity, not the timeout."""
    url = f"sqlite:///{tmp_path_factory.mktemp('limits') / 'flexearn.db'}"
    with serve(url, {"FLEXEARN_HEADER_TIMEOUT": "120"}) as running:
        yield running


# ---- HTTP over raw sockets ------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket, timeout: float = 5.0) -> Answer | None:
    """One HTTP/1.1 answer (with a Content-Length), or None if the connection ends first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        top, rest = data.split(b"\r\n\r\n", 1)
        lines = top.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
    except (ConnectionResetError, TimeoutError):
        return None
    return Answer(int(lines[0].split()[1]), headers, rest[:length])


def closed_after(
    sock: socket.socket, limit_s: float, dribble: bytes = b"", every_s: float = 0.25
) -> float | None:
    """Seconds until the server closes `sock` (sending `dribble` every `every_s` meanwhile), or None
    if it is still open after `limit_s`."""
    started = time.monotonic()
    sock.setblocking(False)
    while time.monotonic() - started < limit_s:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            if selector.select(timeout=every_s):
                try:
                    if not sock.recv(65536):
                        return time.monotonic() - started
                except ConnectionResetError:
                    return time.monotonic() - started
                except BlockingIOError:
                    pass
        if dribble:
            try:
                sock.send(dribble)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return None


def oversized_chunked(sock: socket.socket, total: int) -> None:
    """A chunked body of `total` bytes in 16 KiB chunks, without its final chunk."""
    piece = 16 * 1024
    for start in range(0, total, piece):
        size = min(piece, total - start)
        sock.sendall(f"{size:x}\r\n".encode() + b" " * size + b"\r\n")


# ---- the server's memory --------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def tree_sockets(pid: int) -> int:
    count = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{member}/fd"):
                with contextlib.suppress(OSError):
                    count += os.readlink(f"/proc/{member}/fd/{fd}").startswith("socket:")
    return count


# ---- 413 before authentication, in each envelope --------------------------------------------

ENVELOPES = {
    OKX_PURCHASE: lambda p: set(p) == {"code", "msg", "data"} and p["code"] == "51000" and p["data"] == [],
    BITGET_SUBSCRIBE: lambda p: set(p) == {"code", "msg", "requestTime", "data"}
    and p["code"] == "40017"
    and isinstance(p["requestTime"], int)
    and p["data"] is None,
    ADMIN_USERS: lambda p: p == {
        "error": "body_too_large",
        "message": f"the body is larger than {LIMIT} bytes",
        "param": "body",
    },
}
# Credentials that are present but wrong: without the limit these would be 401s.
BOGUS_AUTH = {
    OKX_PURCHASE: (
        "OK-ACCESS-KEY: nobody",
        "OK-ACCESS-SIGN: x",
        "OK-ACCESS-TIMESTAMP: x",
        "OK-ACCESS-PASSPHRASE: x",
    ),
    BITGET_SUBSCRIBE: ("ACCESS-KEY: nobody", "ACCESS-SIGN: x", "ACCESS-TIMESTAMP: 1", "ACCESS-PASSPHRASE: x"),
    ADMIN_USERS: ("Authorization: Bearer not-the-token-0123456789",),
}


@pytest.mark.parametrize("path", list(ENVELOPES))
def test_a_declared_oversized_body_is_refused_unread_before_authentication(server: Server, path: str) -> None:
    with connect(server.port) as sock:
        started = time.monotonic()
        # 300 MB announced, not a byte of it sent: the answer must come without waiting for it.
        sock.sendall(head("POST", path, "Content-Length: 300000000", JSON, *BOGUS_AUTH[path]))
        answer = read_answer(sock)
        assert answer is not None, "no answer to a declared 300 MB body"
        assert time.monotonic() - started < 2.0
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert ENVELOPES[path](answer.json()), answer.body


@pytest.mark.parametrize("path", list(ENVELOPES))
def test_a_chunked_oversized_body_is_cut_as_it_passes_the_limit(server: Server, path: str) -> None:
    with connect(server.port) as sock:
        sock.sendall(head("POST", path, "Transfer-Encoding: chunked", JSON, *BOGUS_AUTH[path]))
        oversized_chunked(sock, LIMIT + 1)  # and then nothing: the answer cannot wait for the end
        answer = read_answer(sock)
    assert answer is not None, "no answer to a chunked body one byte over the limit"
    assert answer.status == 413
    assert ENVELOPES[path](answer.json()), answer.body


@pytest.mark.parametrize("path", list(ENVELOPES))
def test_a_body_at_the_limit_goes_on_to_authentication(server: Server, path: str) -> None:
    for headers in (("Content-Length: 65536",), ("Transfer-Encoding: chunked",)):
        with connect(server.port) as sock:
            sock.sendall(head("POST", path, *headers, JSON, *BOGUS_AUTH[path]))
            if "Content-Length: 65536" in headers:
                sock.sendall(b" " * LIMIT)
            else:
                oversized_chunked(sock, LIMIT)
                sock.sendall(b"0\r\n\r\n")
            answer = read_answer(sock)
        assert answer is not None
        assert answer.status in (400, 401), (headers, answer.status, answer.body)  # refused by auth, not size


# ---- memory while 300 MB are sent -----------------------------------------------------------


def _stream(port: int, path: str, chunked: bool, total: int, result: dict[str, Any]) -> None:
    """POST `total` bytes (declared, or chunked in 1 MiB chunks) unauthenticated; note how much
    the server let through and what it answered."""
    piece = b" " * MB
    framed = f"{MB:x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    sent = 0
    with connect(port, timeout=30) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
        try:
            sock.sendall(head("POST", path, framing, "Content-Type: application/json"))
            while sent < total:
                sock.sendall(framed)
                sent += MB
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # reset or broken pipe: the server refused the rest
            pass
        answer = read_answer(sock, timeout=30)
    result.update(sent=sent, status=answer.status if answer else None)


@pytest.mark.slow
def test_memory_grows_less_than_64_mb_while_300_mb_of_bodies_are_sent(patient_server: Server) -> None:
    pid = patient_server.proc.pid
    baseline = tree_rss_bytes(pid)
    streams = [  # three unauthenticated 100 MB bodies at once, declared and chunked, on both façades
        (OKX_PURCHASE, False),
        (OKX_PURCHASE, True),
        (BITGET_SUBSCRIBE, True),
    ]
    results: list[dict[str, Any]] = [{} for _ in streams]
    threads = [
        threading.Thread(target=_stream, args=(patient_server.port, path, chunked, 100 * MB, result))
        for (path, chunked), result in zip(streams, results, strict=True)
    ]
    peak = baseline
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        peak = max(peak, tree_rss_bytes(pid))
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    time.sleep(0.5)
    after = tree_rss_bytes(pid)
    grown, kept = (peak - baseline) / MB, (after - baseline) / MB
    print(
        f"\nserver tree RSS {baseline / MB:.1f} MB; peak +{grown:.1f} MB, after +{kept:.1f} MB; "
        f"clients sent {[r.get('sent', 0) // MB for r in results]} MB, "
        f"answered {[r.get('status') for r in results]}"
    )
    assert not any(t.is_alive() for t in threads), "a stream neither finished nor was cut"
    assert grown < 64, f"the server grew {grown:.1f} MB while 300 MB were sent"
    assert kept < 64
    assert all(r["sent"] < 100 * MB for r in results), f"a 100 MB body was read whole: {results}"


# ---- 5,000 idle connections -----------------------------------------------------------------

IDLE = 5000


def _raise_own_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this process may open {hard} files; the test needs {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _open_idle(port: int, count: int, deadline_s: float) -> list[socket.socket]:
    """`count` connections opened at once (non-blocking); the ones connected by the deadline."""
    pending: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        pending.append(sock)
    connected: list[socket.socket] = []
    deadline = time.monotonic() + deadline_s
    with selectors.DefaultSelector() as selector:
        for sock in pending:
            selector.register(sock, selectors.EVENT_WRITE)
        while len(connected) < count and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=min(left, 0.5)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                selector.unregister(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.append(sock)
                else:
                    sock.close()
    for sock in pending:
        if sock not in connected:
            sock.close()
    return connected


def _serve_once(port: int) -> float:
    """Seconds from connecting to a whole answer of GET /api/v5/public/time (inf: none in 5 s)."""
    started = time.monotonic()
    try:
        with connect(port, timeout=5) as sock:
            sock.sendall(head("GET", "/api/v5/public/time"))
            answer = read_answer(sock, timeout=5)
    except OSError:
        return float("inf")
    return time.monotonic() - started if answer and answer.status == 200 else float("inf")


@pytest.mark.slow
def test_a_client_is_served_within_1s_while_5000_idle_connections_are_open(patient_server: Server) -> None:
    _raise_own_open_files(IDLE + 512)
    pid, port = patient_server.proc.pid, patient_server.port
    rss_before = tree_rss_bytes(pid)
    idle = _open_idle(port, IDLE, deadline_s=30)
    try:
        for sock in idle[::2]:  # half of them start a request and never finish its headers
            with contextlib.suppress(OSError):
                sock.send(b"GET /api/v5/public/time HTTP/1.1\r\n")
        time.sleep(1.0)  # let the server accept what it will
        held = tree_sockets(pid)
        times = [_serve_once(port) for _ in range(5)]
        with selectors.DefaultSelector() as selector:  # none of the idle ones was closed meanwhile
            for sock in idle:
                selector.register(sock, selectors.EVENT_READ)
            closed = len(selector.select(timeout=0))
        rss_idle = tree_rss_bytes(pid)
    finally:
        for sock in idle:
            sock.close()
    print(
        f"\n{len(idle)} idle connections, {held} sockets held by the server, served in "
        f"{[round(t, 3) for t in times]} s; server tree RSS {rss_before / MB:.1f} MB → {rss_idle / MB:.1f} MB"
    )
    assert len(idle) == IDLE, f"only {len(idle)} of {IDLE} connections could be opened"
    assert held >= IDLE, f"the server holds {held} sockets: the idle connections wait unaccepted"
    assert closed == 0
    assert max(times) < 1.0, f"a new client waited {max(times):.3f} s"
    assert _serve_once(port) < 1.0  # and after they are gone


# ---- timeouts -------------------------------------------------------------------------------


def test_a_slow_header_is_cut_within_the_header_timeout(server: Server) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"GET /api/v5/public/time HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        seconds = closed_after(sock, limit_s=3 * CUT_BY_S, dribble=b"X-Slow: y\r\n")
    assert seconds is not None, "a header sent a line every 0.25 s was never cut"
    assert TIMEOUT_S - 0.5 <= seconds <= CUT_BY_S, seconds


@pytest.mark.parametrize("path", [OKX_PURCHASE, BITGET_SUBSCRIBE])
def test_a_slow_body_is_answered_408_within_the_body_timeout(server: Server, path: str) -> None:
    with connect(server.port) as sock:
        sock.sendall(head("POST", path, "Content-Length: 1000", "Content-Type: application/json"))
        started = time.monotonic()
        sock.setblocking(False)
        answer = None
        while time.monotonic() - started < 3 * CUT_BY_S:  # one byte every 0.2 s: 200 s for the body
            with contextlib.suppress(OSError):
                sock.send(b" ")
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ)
                if selector.select(timeout=0.2):
                    sock.setblocking(True)
                    answer = read_answer(sock)
                    break
        seconds = time.monotonic() - started
    assert answer is not None, f"a body sent a byte every 0.2 s was not cut within {seconds:.1f} s"
    assert TIMEOUT_S - 0.5 <= seconds <= CUT_BY_S, seconds
    assert answer.status == 408
    payload = answer.json()
    assert payload["code"] == ("51000" if path == OKX_PURCHASE else "40017")
    assert "not received within 2 s" in payload["msg"]


def test_a_silent_connection_is_closed_within_the_header_timeout(server: Server) -> None:
    with connect(server.port) as sock:
        seconds = closed_after(sock, limit_s=3 * CUT_BY_S)
    assert seconds is not None, "a connection that never sent a byte was kept open"
    assert TIMEOUT_S - 0.5 <= seconds <= CUT_BY_S, seconds


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(server: Server) -> None:
    with connect(server.port) as sock:
        for _ in range(2):  # the connection is kept alive between requests …
            sock.sendall(head("GET", "/api/v5/public/time"))
            answer = read_answer(sock)
            assert answer is not None
            assert answer.status == 200
            assert answer.headers.get("connection") != "close"
        seconds = closed_after(sock, limit_s=3 * CUT_BY_S)  # … until it idles for the timeout
    assert seconds is not None, "an idle keep-alive connection was kept open"
    assert TIMEOUT_S - 0.5 <= seconds <= CUT_BY_S, seconds


def test_a_client_leaving_mid_body_is_logged_499_not_as_a_server_error(server: Server) -> None:
    path = "/api/v5/finance/savings/set-lending-rate"  # a path no other test here posts to
    with connect(server.port) as sock:
        sock.sendall(head("POST", path, "Content-Length: 1000", JSON) + b'{"ccy":')
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not (lines := server.access_lines(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [(line["status"], line["code"]) for line in lines] == [(499, "client_disconnected")]
    server.log.seek(0)
    assert b"Traceback" not in server.log.read()
