"""OKX wire format: the envelope, request parameters, and the response records by name."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flexearn.api.okx import errors
from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import D, plain

OkxRecord = dict[str, str]


def envelope(data: list[Any], code: str = "0", msg: str = "") -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": data}


def amount(value: Decimal) -> str:
    return plain(value)


def rate(value: Decimal) -> str:
    """Rates as OKX writes them in balances: 16 decimal places."""
    return f"{value:.16f}"


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object body; numbers are kept exact."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise errors.JSON_SYNTAX from None
    if not isinstance(body, dict):
        raise errors.JSON_SYNTAX
    return body


def text(params: Mapping[str, Any], name: str) -> str | None:
    """A parameter as text; None when absent or empty (OKX clients send "" for "not given")."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise errors.invalid(name)
    return str(value).strip()


def required_text(params: Mapping[str, Any], name: str) -> str:
    value = text(params, name)
    if value is None:
        raise errors.empty(name)
    return value


def decimal(params: Mapping[str, Any], name: str) -> Decimal | None:
    value = text(params, name)
    return None if value is None else _decimal(value, name)


def required_decimal(params: Mapping[str, Any], name: str) -> Decimal:
    return _decimal(required_text(params, name), name)


def _decimal(value: str, name: str) -> Decimal:
    try:
        return D(value, param=name)
    except FlexearnError:
        raise errors.invalid(name) from None


def currency(params: Mapping[str, Any]) -> str | None:
    value = text(params, "ccy")
    return None if value is None else _currency(value)


def required_currency(params: Mapping[str, Any]) -> str:
    return _currency(required_text(params, "ccy"))


def _currency(value: str) -> str:
    if not value.isalnum() or len(value) > 16:
        raise errors.invalid("ccy")
    return value.upper()


def timestamp(params: Mapping[str, Any], name: str) -> int | None:
    value = text(params, name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 16:
        raise errors.invalid(name)
    return int(value)


def limit(params: Mapping[str, Any], default: int = 100, maximum: int = 100) -> int:
    value = text(params, "limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise errors.invalid("limit", f"1 to {maximum}")
    return int(value)
