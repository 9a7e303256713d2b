"""Reading request parameters (query or JSON body) the way both exchanges do, with their errors.

Each façade gives the two error factories: a parameter that is missing or empty, and one that
is there but wrong. An empty string counts as absent (clients send "" for "not given").
Amounts follow the one grammar of `domain.money.parse_amount`; integers are ASCII digits. Neither
is stripped or otherwise tidied: " 1", "+3", "1_0" and "٣" are refused, not guessed at. A JSON
number (rather than a string) is read by its value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import MAX_INTEGER_DIGITS, MAX_PRECISION, ascii_digits, parse_amount


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
        value = self.raw(name)
        return None if value is None else value.strip()

    def raw(self, name: str) -> str | None:
        """The parameter's text exactly as sent (a JSON number as written); None if absent or empty."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise self._invalid(name, "")
        return _number_text(value) if isinstance(value, Decimal) else str(value)

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise self._missing(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.raw(name)
        return None if value is None else self._decimal(value, name)

    def required_decimal(self, name: str) -> Decimal:
        value = self.raw(name)
        if value is None:
            raise self._missing(name)
        return self._decimal(value, name)

    def _decimal(self, value: str, name: str) -> Decimal:
        try:
            return parse_amount(value, param=name)
        except FlexearnError as error:
            raise self._invalid(name, error.message.partition(": ")[2]) from None

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
        value = self.raw(name)
        if value is None:
            return None
        if not ascii_digits(value) or not low <= int(value) <= high:
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


def _number_text(value: Decimal) -> str:
    """A JSON number (not a string) by its value, written plainly when an amount could be that
    small or large: JSON encoders write 0.0000001 as 1e-07 (ccxt sends some amounts as numbers), so
    the text as written would not do. Past the amount grammar's reach it stays as written, for the
    grammar to refuse (formatting 1E+999999999 plainly would take a billion digits)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -MAX_PRECISION and value.adjusted() < MAX_INTEGER_DIGITS:
        return format(value, "f")
    return str(value)


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
