"""Binance's wire: no envelope, signed parameters, form bodies, amounts (the dialect).

A signed request carries its key in the `X-MBX-APIKEY` header and `timestamp`, optional
`recvWindow` and `signature` among its parameters, in the query string or the form body. The
signature is hex(HMAC-SHA256(secret, query string + body)) over the bytes as sent, the `signature`
parameter left out; the timestamp may be `recvWindow` ms old (default 5000, at most 60000) and at
most 1000 ms ahead of the server's clock. Sources: docs/fidelity.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp

from flexearn.api.auth import SignedRequest
from flexearn.api.binance import errors, weights
from flexearn.api.facade import Endpoint, TableDialect, WireError
from flexearn.api.ratelimit import RateLimiter
from flexearn.domain.money import ascii_digits, plain

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
AHEAD_MS = 1_000  # "timestamp < serverTime + 1000"
SIGNATURE = b"signature"


def amount(value: Decimal | None, places: int | None = None) -> str:
    if value is None:
        return "0"
    return f"{value:.{places}f}" if places is not None else plain(value)


class BinanceDialect(TableDialect):
    name = "binance"

    def __init__(self) -> None:
        super().__init__(errors)

    def success(self, data: Any) -> Any:
        return data  # Binance answers the object or array itself

    def failure(self, error: WireError) -> dict[str, Any]:
        return {"code": int(error.code), "msg": error.msg}

    def metered(self, limiter: RateLimiter, limit_scale: int) -> Callable[[Endpoint, ASGIApp], ASGIApp]:
        return weights.meter(limiter, limit_scale)  # request weights per IP, per minute

    def values(self, method: str, query: bytes, body: bytes) -> Mapping[str, Any]:
        """Parameters from the form body and the query string; "If a parameter sent in both the
        query string and request body, the query string parameter will be used"."""
        return {**_form(body), **_form(query)}

    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest:
        api_key = headers.get(API_KEY_HEADER, "")
        if not api_key:
            raise errors.API_KEY_FORMAT
        _, _, query = target.partition(b"?")
        params = self.values(method, query, body)
        signature = params.get("signature") or ""
        if not signature:
            raise errors.empty("signature")
        timestamp = params.get("timestamp") or ""
        if not timestamp:
            raise errors.empty("timestamp")
        if not ascii_digits(timestamp, 16):
            raise errors.invalid("timestamp", "^[0-9]{1,16}$")
        window = params.get("recvWindow") or ""
        if window and not ascii_digits(window, 16):
            raise errors.invalid("recvWindow", "^[0-9]{1,16}$")
        window_ms = int(window) if window else DEFAULT_RECV_WINDOW_MS
        if window_ms > MAX_RECV_WINDOW_MS:
            raise errors.BAD_RECV_WINDOW
        return SignedRequest(
            api_key,
            signature,
            timestamp,
            int(timestamp),
            None,  # no passphrase on Binance
            method,
            target,
            body,
            ip,
            payload=_unsigned(query) + _unsigned(body),
            window_ms=window_ms,
            ahead_ms=AHEAD_MS,
        )


def _form(raw: bytes) -> dict[str, str]:
    """A query string or form body, decoded as Starlette decodes a query; a parameter sent twice
    is refused (-1101), as Binance refuses it."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in found:
            raise errors.BinanceError("-1101", "Duplicate values for a parameter detected.")
        found[name] = value
    return found


def _unsigned(raw: bytes) -> bytes:
    """`raw` (a query string or form body, as sent) without its `signature` parameter."""
    if SIGNATURE not in raw:
        return raw
    return b"&".join(p for p in raw.split(b"&") if p.partition(b"=")[0] != SIGNATURE)
