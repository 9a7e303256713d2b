"""Exact decimal amounts and rates: one way in (`D`), named rounding on the way out."""

from __future__ import annotations

import decimal
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal, InvalidOperation

from flexearn.domain.errors import InvalidParameter

ZERO = Decimal(0)
HOURS_PER_YEAR = 365 * 24
MAX_PRECISION = 18

# Wide enough that every product and quotient below is exact before the named rounding step.
_EXACT = Context(prec=120, rounding=ROUND_DOWN)

# Amounts have up to 20 integer and 18 decimal digits (38 significant digits), and sums of many
# of them more; Python's default context keeps 28 and would round sums silently. Every Decimal
# operation in the process gets 60 digits: this thread now, every thread started later through
# DefaultContext. (Divisions still round, and every division of money is an explicit step above.)
ARITHMETIC_DIGITS = 60
decimal.DefaultContext.prec = ARITHMETIC_DIGITS
decimal.getcontext().prec = max(decimal.getcontext().prec, ARITHMETIC_DIGITS)


def D(value: str | int | Decimal, *, param: str = "amount") -> Decimal:
    """Make a Decimal from text, an int or a Decimal; floats and non-finite values are refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise TypeError(f"{param}: amounts are made from str, int or Decimal, not {type(value)!r}")
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise InvalidParameter(param) from None
    if not number.is_finite():
        raise InvalidParameter(param)
    return number


def decimal_places(value: Decimal) -> int:
    """How many decimal places `value` is written with (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def round_down(value: Decimal, places: int) -> Decimal:
    """Round toward zero to `places`: what the engine pays out."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=_EXACT)


def round_up(value: Decimal, places: int) -> Decimal:
    """Round away from zero to `places`: what the engine charges."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_UP, context=_EXACT)


def mul_div_down(a: Decimal, b: Decimal, divisor: int | Decimal, places: int) -> Decimal:
    """`a × b / divisor` rounded down to `places`, computed exactly (no intermediate rounding)."""
    product = _EXACT.multiply(a, b)
    return round_down(_EXACT.divide(product, Decimal(divisor)), places)


def mul_div_up(a: Decimal, b: Decimal, divisor: int | Decimal, places: int) -> Decimal:
    """`a × b / divisor` rounded up to `places`, computed exactly."""
    product = _EXACT.multiply(a, b)
    quotient = _EXACT.divide(product, Decimal(divisor))
    # _EXACT rounds the quotient down at 120 digits; a non-terminating tail must still round up.
    if _EXACT.multiply(quotient, Decimal(divisor)) != product:
        quotient = _EXACT.next_plus(quotient)
    return round_up(quotient, places)


def plain(value: Decimal) -> str:
    """Fixed-point text without exponent or trailing zeros ("0" for zero)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")
