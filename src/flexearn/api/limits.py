"""Bounded request bodies: what a client sends is read up to a size and a time, before anything else.

Every handler reads its body whole (a signature covers the raw bytes), so the body must be bounded
before a handler sees it, and before authentication: an anonymous client could otherwise make the
server hold a 300 MB body. `BodyLimits` reads the body itself, at most `max_bytes` of it
(FLEXEARN_MAX_BODY_BYTES) within `timeout` seconds (FLEXEARN_BODY_TIMEOUT) of the headers, and hands
the application that body: in the scope for the façades' endpoints (`api/facade.request_body`), and
in one message for every other app:

- a declared `Content-Length` above the limit is refused at once, without reading a byte of it;
- a streamed body (chunked, or HTTP/2 without a length) is counted as it arrives and refused as
  soon as it passes the limit, having held at most `max_bytes` plus one chunk;
- a body still incomplete when its time is up is refused (slow clients hold a connection and a
  task, not the server).

A refusal is 413 (too large) or 408 (too slow) in the envelope of the path's API — OKX's, Bitget's,
Binance's or the admin API's, chosen by prefix as `app.py`'s `not_found` does — with `Connection: close`:
the rest of such a body is never read, so the connection cannot carry another request.

A request without a body (most GETs: HTTP/1.1 without `Content-Length` or `Transfer-Encoding`)
costs one pass over its header list, and the application gets its empty body without the server
being asked. Header size and time are bounded by the server itself (see
`api/listener.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flexearn.api.binance import errors as binance_errors
from flexearn.api.binance.wire import BinanceDialect
from flexearn.api.bitget import errors as bitget_errors
from flexearn.api.bitget.wire import BitgetDialect
from flexearn.api.facade import BODY
from flexearn.api.okx import errors as okx_errors
from flexearn.api.okx.wire import OkxDialect
from flexearn.observability import context
from flexearn.observability.middleware import CLIENT_CLOSED, facade_of

TOO_LARGE = 413
TOO_SLOW = 408
_OKX, _BITGET, _BINANCE = OkxDialect(), BitgetDialect(), BinanceDialect()


class BodyLimits:
    """ASGI middleware: the request body, bounded in size and time, read before the application runs."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        if max_bytes < 1 or timeout <= 0:
            raise ValueError("max_bytes and timeout must be positive")
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await self._body(scope, receive)
        if isinstance(body, int):
            if body:  # else the client went away: nobody to answer
                await self._refuse(scope, send, body)
            else:
                context.note_code(CLIENT_CLOSED)  # logged and counted as 499
            return
        scope[BODY] = body  # the façades' endpoints take it from here
        await self.app(scope, _replaying(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | int:
        """The whole body, or the status of its refusal (`_read`), from what the headers declare."""
        length: bytes | None = None
        streamed = False
        for name, value in scope["headers"]:  # ASGI header names are lower case
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                streamed = True
        if streamed or (length is None and scope.get("http_version") == "2"):  # no length declared
            return await self._read(receive)
        if length is None:  # HTTP/1 without either header: no body at all, and the server is not asked
            return b""
        declared = int(length) if length.isdigit() else self.max_bytes + 1  # the server checked it
        if declared > self.max_bytes:
            return TOO_LARGE
        return await self._read(receive) if declared else b""

    async def _read(self, receive: Receive) -> bytes | int:
        """The whole body; else 413 (past the limit), 408 (out of time) or 0 (the client left)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect
                        return 0
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        return TOO_LARGE
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except TimeoutError:
            return TOO_SLOW

    async def _refuse(self, scope: Scope, send: Send, status: int) -> None:
        code, payload = refusal(str(scope.get("path", "")), status, self.max_bytes, self.timeout)
        context.note_code(code)  # for the request metrics and the access log
        response = JSONResponse(payload, status_code=status, headers={"Connection": "close"})
        await response(scope, _no_body, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the application: the whole body in one message, then the server's own
    messages (e.g. http.disconnect)."""
    replayed = False

    async def receive_body() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_body


async def _no_body() -> Message:  # pragma: no cover - a JSONResponse never reads its request
    return {"type": "http.disconnect"}


def refusal(path: str, status: int, max_bytes: int, timeout: float) -> tuple[str, dict[str, Any]]:
    """The error code and body of a 413 or 408 on `path`, in that path's API's envelope.

    The exchanges document no code for an oversized or unfinished body (their edge proxies answer
    such requests before the API does), so each answers with its documented generic parameter
    error naming the parameter `body`: OKX 51000 "Parameter {p} error", Bitget 40017 "Parameter
    verification failed". Both are refusals a client must not retry as they are (ccxt raises
    BadRequest / ExchangeError, not a retryable network error); the HTTP status tells which it was.
    """
    if status == TOO_LARGE:
        detail, admin_code = f"larger than {max_bytes} bytes", "body_too_large"
    else:
        detail, admin_code = f"not received within {timeout:g} s", "body_timeout"
    facade = facade_of(path)
    if facade in ("admin", "dashboard"):
        return admin_code, {"error": admin_code, "message": f"the body is {detail}", "param": "body"}
    if facade == "bitget":
        refusal = bitget_errors.invalid("body", detail, status)
        return refusal.code, _BITGET.failure(refusal)
    if facade == "binance":
        refused = binance_errors.BinanceError(
            "-1100", f"Illegal characters found in parameter 'body': {detail}.", status
        )
        return refused.code, _BINANCE.failure(refused)
    error = okx_errors.invalid("body", detail, status)
    return error.code, _OKX.failure(error)
