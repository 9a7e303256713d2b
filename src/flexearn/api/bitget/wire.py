"""Bitget wire format: the envelope, headers, parameters and amounts (the dialect)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flexearn.adapters.clock import wall_ms
from flexearn.api.auth import SignedRequest, read_signed_request
from flexearn.api.bitget import errors
from flexearn.api.facade import TableDialect, WireError
from flexearn.domain.money import ascii_digits, plain

HEADERS = ("ACCESS-KEY", "ACCESS-SIGN", "ACCESS-TIMESTAMP", "ACCESS-PASSPHRASE")


def amount(value: Decimal | None, places: int | None = None) -> str:
    if value is None:
        return ""
    return f"{value:.{places}f}" if places is not None else plain(value)


def ms(value: int | None) -> str:
    return "" if value is None else str(value)


class BitgetDialect(TableDialect):
    name = "bitget"

    def __init__(self, now: Callable[[], int] = wall_ms) -> None:
        super().__init__(errors)
        self.now = now  # `requestTime`: business time, as every other timestamp a client reads

    def success(self, data: Any) -> dict[str, Any]:
        # ccxt raises on any other non-empty `msg`
        return {"code": "00000", "msg": "success", "requestTime": self.now(), "data": data}

    def failure(self, error: WireError) -> dict[str, Any]:
        return {"code": error.code, "msg": error.msg, "requestTime": self.now(), "data": None}

    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest:
        return read_signed_request(
            headers, HEADERS, errors.header_missing, _ms_timestamp, method, target, body, ip
        )


def _ms_timestamp(text: str) -> int:
    """Bitget's ACCESS-TIMESTAMP: epoch milliseconds (ASCII digits: int() refuses "²")."""
    if not ascii_digits(text, 16):
        raise errors.INVALID_TIMESTAMP
    return int(text)
