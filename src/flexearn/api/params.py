"""Reading request parameters (query or JSON body) the way both exchanges do, with their errors.

Each façade gives the two error factories: a parameter that is missing or empty, and one that
is there but wrong. An empty string counts as absent (clients send "" for "not given").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import D


class Params:
    def __init__(
        self,
        values: Mapping[str, Any],
        missing: Callable[[str], Exception],
        invalid: Callable[[str, str], Exception],
    ) -> None:
        self.values = values
        self._missing, self._invalid = missing, invalid

    def invalid(self, name: str, detail: str = "") -> Exception:
        return self._invalid(name, detail)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self._invalid(name, "")
        return str(value).strip()

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise self._missing(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.text(name)
        return None if value is None else self._decimal(value, name)

    def required_decimal(self, name: str) -> Decimal:
        return self._decimal(self.required_text(name), name)

    def _decimal(self, value: str, name: str) -> Decimal:
        try:
            return D(value, param=name)
        except FlexearnError:
            raise self._invalid(name, "") from None

    def currency(self, name: str = "ccy") -> str | None:
        value = self.text(name)
        return None if value is None else self._currency(value, name)

    def required_currency(self, name: str = "ccy") -> str:
        return self._currency(self.required_text(name), name)

    def _currency(self, value: str, name: str) -> str:
        if not value.isalnum() or len(value) > 16:
            raise self._invalid(name, "")
        return value.upper()

    def integer(self, name: str, *, low: int = 0, high: int = 10**16) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        # isdigit() alone admits "²" and "١٢", which int() refuses or reads; and int() refuses
        # strings of over 4300 digits: both were server errors.
        if not _is_digits(value) or not low <= int(value) <= high:
            raise self._invalid(name, f"{low} to {high}" if high < 10**16 else "")
        return int(value)

    def required_integer(self, name: str, *, low: int = 0, high: int = 10**16) -> int:
        value = self.integer(name, low=low, high=high)
        if value is None:
            raise self._missing(name)
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(name)
        if value is not None and value not in choices:
            raise self._invalid(name, " or ".join(choices))
        return value

    def required_choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.choice(name, choices)
        if value is None:
            raise self._missing(name)
        return value


MAX_INTEGER_DIGITS = 32  # more than any limit here needs, far below int()'s 4300


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= MAX_INTEGER_DIGITS


def json_object(raw: bytes, syntax_error: Exception) -> dict[str, Any]:
    """A JSON object body (empty: {}); numbers kept exact."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" too deep
        raise syntax_error from None
    if not isinstance(body, dict):
        raise syntax_error
    return body
