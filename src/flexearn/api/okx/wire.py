"""OKX wire format: the envelope, parameters with OKX's errors, amounts and rates (the dialect)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flexearn.api.auth import SignedRequest
from flexearn.api.facade import TableDialect, WireError
from flexearn.api.okx import auth, errors
from flexearn.domain.money import plain, round_down


def amount(value: Decimal) -> str:
    return plain(value)


# OKX writes the public lending and borrow rates with 4 decimal places ("lendingRate": "0.0669",
# "rate": "0.189" in its answers): a pro-rata pool's rate, borrow rate × borrowed / eligible, has
# as many digits as the division gives, so it is cut, down (what a lender is shown never exceeds
# what it earns).
PUBLIC_RATE_PLACES = 4


def public_rate(value: Decimal) -> str:
    return plain(round_down(value, PUBLIC_RATE_PLACES))


def rate(value: Decimal) -> str:
    """Rates as OKX writes them in balances: 16 decimal places."""
    return f"{value:.16f}"


class OkxDialect(TableDialect):
    name = "okx"

    def __init__(self) -> None:
        super().__init__(errors)

    def success(self, data: Any) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    def failure(self, error: WireError) -> dict[str, Any]:
        return {"code": error.code, "msg": error.msg, "data": []}

    def body(self, raw: bytes) -> Mapping[str, Any]:
        if not raw.strip():  # OKX refuses a POST without a body before reading its parameters
            raise errors.EMPTY_BODY
        return super().body(raw)

    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest:
        return auth.signed_request(method, target, body, headers, ip)
