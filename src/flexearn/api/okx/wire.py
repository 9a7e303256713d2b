"""OKX wire format: the envelope, parameters with OKX's errors, amounts and rates (the dialect)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flexearn.api.auth import SignedRequest
from flexearn.api.facade import ErrorTable, TableDialect, WireError
from flexearn.api.okx import auth, errors
from flexearn.domain.money import plain


def amount(value: Decimal) -> str:
    return plain(value)


def rate(value: Decimal) -> str:
    """Rates as OKX writes them in balances: 16 decimal places."""
    return f"{value:.16f}"


class OkxDialect(TableDialect):
    name = "okx"
    too_many: WireError = errors.TOO_MANY
    unavailable: WireError = errors.UNAVAILABLE
    system_error: WireError = errors.SYSTEM_ERROR

    def __init__(self) -> None:
        super().__init__(
            ErrorTable(errors.empty, errors.invalid, errors.JSON_SYNTAX, errors.from_engine, auth.okx_error)
        )

    def success(self, data: Any) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    def failure(self, error: WireError) -> dict[str, Any]:
        return {"code": error.code, "msg": error.msg, "data": []}

    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest:
        return auth.signed_request(method, target, body, headers, ip)
