"""OKX wire format: the envelope, parameters with OKX's errors, amounts and rates (the dialect)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flexearn.api import params as p
from flexearn.api.auth import AuthFailure, SignedRequest
from flexearn.api.facade import WireError
from flexearn.api.okx import auth, errors
from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import plain


def amount(value: Decimal) -> str:
    return plain(value)


def rate(value: Decimal) -> str:
    """Rates as OKX writes them in balances: 16 decimal places."""
    return f"{value:.16f}"


class OkxDialect:
    name = "okx"
    too_many: WireError = errors.TOO_MANY
    unavailable: WireError = errors.UNAVAILABLE
    system_error: WireError = errors.SYSTEM_ERROR

    def success(self, data: Any) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    def failure(self, error: WireError) -> dict[str, Any]:
        return {"code": error.code, "msg": error.msg, "data": []}

    def signed_request(
        self, method: str, target: bytes, body: bytes, headers: Mapping[str, str], ip: str
    ) -> SignedRequest:
        return auth.signed_request(method, target, body, headers, ip)

    def auth_error(self, failure: AuthFailure) -> WireError:
        return auth.okx_error(failure)

    def engine_error(self, error: FlexearnError) -> WireError:
        return errors.from_engine(error)

    def params(self, values: Mapping[str, Any]) -> p.Params:
        return p.Params(values, errors.empty, errors.invalid)

    def body(self, raw: bytes) -> Mapping[str, Any]:
        return p.json_object(raw, errors.JSON_SYNTAX)
