"""OKX wire format: the envelope, request parameters with OKX's errors, amounts and rates."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flexearn.api import params as p
from flexearn.api.okx import errors
from flexearn.domain.money import plain


def envelope(data: list[Any], code: str = "0", msg: str = "") -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def amount(value: Decimal) -> str:
    return plain(value)


def rate(value: Decimal) -> str:
    """Rates as OKX writes them in balances: 16 decimal places."""
    return f"{value:.16f}"


def params(values: Mapping[str, Any]) -> p.Params:
    return p.Params(values, errors.empty, errors.invalid)


def parse_body(raw: bytes) -> dict[str, Any]:
    return p.json_object(raw, errors.JSON_SYNTAX)
