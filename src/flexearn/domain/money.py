"""Exact decimal amounts and rates: one way in (`D`), named rounding on the way out."""

from __future__ import annotations

import decimal
import functools
import re
from collections.abc import Iterable
from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal, InvalidOperation, Rounded

from flexearn.domain.errors import InvalidParameter, TooManyPlaces

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


# The one grammar of an amount or rate a client sends (OKX, Bitget, the admin API, the CLI): ASCII
# digits with at most one decimal point, at most 20 integer and 18 decimal digits. Both exchanges
# document amounts as plain decimal strings ("0.1", "200.000000") and their SDKs send them so;
# neither documents a sign (every amount is a quantity, its direction is the endpoint's `side`)
# nor an exponent, so neither is legal here: "+3", "-3", "1e2" and "1E-60" are refused, and so
# are spaces, "_" and digits of other scripts ("１", "٣") that Decimal() would read. Bounded
# text means bounded numbers: no exponent can make arithmetic round, overflow or allocate.
MAX_INTEGER_DIGITS = 20
AMOUNT_PATTERN = rf"[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MAX_PRECISION}}})?"
_AMOUNT = re.compile(AMOUNT_PATTERN)
AMOUNT_RULE = (
    f"a plain decimal number (ASCII digits and at most one '.'; up to {MAX_INTEGER_DIGITS} integer"
    f" and {MAX_PRECISION} decimal places)"
)


def parse_amount(text: object, *, param: str = "amount") -> Decimal:
    """An amount or rate as a client sends it, read by the one grammar above (or InvalidParameter
    naming `param`). Nothing is stripped: " 1" is refused, not read as 1."""
    if not isinstance(text, str) or _AMOUNT.fullmatch(text) is None:
        raise InvalidParameter(param, f"must be {AMOUNT_RULE}")
    return Decimal(text)


def check_places(amount: Decimal, places: int, param: str = "amount") -> Decimal:
    """Refuse an amount written with more decimal places than `places` (trailing zeros are fine)."""
    if decimal_places(amount) > places:
        raise TooManyPlaces(param, f"at most {places} decimal places")
    return amount


MAX_WHOLE_DIGITS = 32  # more than any integer parameter needs, far below int()'s 4300


def ascii_digits(value: str, max_digits: int = MAX_WHOLE_DIGITS) -> bool:
    """Whether `value` is a whole number in ASCII digits, short enough for int().

    isdigit() alone admits "²" and "١٢", which int() refuses or reads as 12; and int() refuses
    strings of over 4300 digits: each was a server error or a misread parameter."""
    return value.isascii() and value.isdigit() and len(value) <= max_digits


# Materialised balances (account balances, positions, holdings) are sums of journal legs, and the
# ledger check compares them with the legs' sum the database computes exactly. So they are added
# in a context that may not round: a sum that would need more than its digits raises instead of
# silently differing from the legs' (a request then fails whole, and nothing is written).
_NO_ROUNDING = Context(prec=ARITHMETIC_DIGITS, traps=[Rounded, InvalidOperation])


def exact_add(a: Decimal, b: Decimal) -> Decimal:
    """`a + b`, exactly, or `decimal.Rounded` raised."""
    return _NO_ROUNDING.add(a, b)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The exact sum of `values`, or `decimal.Rounded` raised."""
    total = ZERO
    for value in values:
        total = _NO_ROUNDING.add(total, value)
    return total


def decimal_places(value: Decimal) -> int:
    """How many decimal places `value` is written with (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# `_EXACT` rounding up, for `round_up`.
_EXACT_UP = Context(prec=_EXACT.prec, rounding=ROUND_UP)


@functools.cache
def _quantum(places: int) -> Decimal:
    """1E-places: what `places` rounds to (made once per places: settlement rounds per row)."""
    return Decimal(1).scaleb(-places)


def round_down(value: Decimal, places: int) -> Decimal:
    """Round toward zero to `places`: what the engine pays out."""
    return _EXACT.quantize(value, _quantum(places))


def round_up(value: Decimal, places: int) -> Decimal:
    """Round away from zero to `places`: what the engine charges."""
    return _EXACT_UP.quantize(value, _quantum(places))


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
    text = str(value)  # settlement writes millions: most are plain already but for trailing zeros
    if "E" in text or "N" in text or len(text) > 28:  # exponent, NaN, or (beyond 28 digits) rounding
        return _plain(value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _plain(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")
