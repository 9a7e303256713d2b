"""The one table from engine errors, authentication failures and refusals to Binance's codes.

Binance answers an error with an HTTP 4xx (5xx: its own fault) and the body
`{"code": -NNNN, "msg": "..."}`. Sources (docs/fidelity.md): Binance's error-code page,
https://developers.binance.com/docs/binance-spot-api-docs/errors (10xx, 11xx, 2xxx), and for the
Simple Earn (-6xxx) and wallet (-5xxx) codes ccxt's `binance` exceptions map
(ccxt/python/ccxt/binance.py, `exceptions`), which quotes Binance's messages.
"""

from __future__ import annotations

from flexearn.api.auth import AuthFailure, Failure
from flexearn.api.facade import WireError
from flexearn.domain.catalog_errors import BelowMinimum, NoSuchProduct, TooPrecise
from flexearn.domain.errors import FlexearnError, TooManyPlaces, lineage
from flexearn.domain.money import AMOUNT_PATTERN


class BinanceError(WireError):
    """An answer in Binance's error body (HTTP 400 unless Binance says otherwise)."""


def empty(param: str) -> BinanceError:
    return BinanceError("-1102", f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


# The amount grammar (domain.money), in the words of Binance's -1100.
AMOUNT_RANGE = f"^{AMOUNT_PATTERN}$"


def invalid(param: str, detail: str = "", status: int = 400) -> BinanceError:
    """-1100 for a value outside its grammar (`legal range`), as Binance words it; an amount's
    range is the amount grammar's pattern (`Params` says "must be …" of it)."""
    detail = AMOUNT_RANGE if detail.startswith("must be ") else detail
    legal = f"; legal range is '{detail}'" if detail else ""
    return BinanceError("-1100", f"Illegal characters found in parameter '{param}'{legal}.", status)


def bad_value(param: str, detail: str) -> BinanceError:
    """-1130: well formed, but not a value this endpoint takes (an unknown enum, a bad window)."""
    return BinanceError("-1130", f"Invalid data sent for a parameter: {param} ({detail}).")


API_KEY_FORMAT = BinanceError("-2014", "API-key format invalid.", 401)
BAD_RECV_WINDOW = BinanceError("-1131", "recvWindow must be less than 60000")
JSON_SYNTAX = invalid("body")  # not used: Binance bodies are forms
TOO_MANY = BinanceError(
    "-1003", "Too much request weight used; please use WebSocket Streams for live updates.", 429
)
UNAVAILABLE = BinanceError(
    "-1008", "Server is currently overloaded with other requests. Please try again in a few minutes.", 503
)
SYSTEM_ERROR = BinanceError("-1000", "An unknown error occurred while processing the request.", 500)
NOT_FOUND = BinanceError("-1099", "Not found, authenticated, or authorized", 404)

_KEY_REFUSED = BinanceError("-2015", "Invalid API-key, IP, or permissions for action.", 401)
FAILURES = {
    Failure.EXPIRED_TIMESTAMP: BinanceError(
        "-1021", "Timestamp for this request is outside of the recvWindow."
    ),
    Failure.UNKNOWN_KEY: _KEY_REFUSED,
    Failure.EXPIRED_KEY: _KEY_REFUSED,
    Failure.BAD_PASSPHRASE: _KEY_REFUSED,  # never: Binance signs without a passphrase
    Failure.BAD_SIGNATURE: BinanceError("-1022", "Signature for this request is not valid."),
    # flexearn refuses a signed request seen before on any façade; Binance has no code of its own
    Failure.REPLAYED: BinanceError("-1022", "Signature for this request is not valid: it was already used."),
    Failure.IP_REFUSED: _KEY_REFUSED,
    Failure.NO_PERMISSION: _KEY_REFUSED,
    Failure.OTHER_FACADE: _KEY_REFUSED,  # a key not enabled for the Binance façade (`keys.FACADES`)
}


def from_auth(failure: AuthFailure) -> BinanceError:
    return FAILURES[failure.failure]


# Engine error code → Binance code and message; "{message}" and "{param}" are the error's. An error
# without a row takes its nearest ancestor's (`lineage`); none at all answers -1000 (a test fails).
TABLE: dict[str, tuple[str, str]] = {
    "missing_parameter": (
        "-1102",
        "Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
    ),
    "invalid_parameter": ("-1130", "Invalid data sent for a parameter: {message}"),
    "unsupported_currency": ("-1130", "Invalid data sent for a parameter: {message}"),
    "already_exists": ("-1130", "Invalid data sent for a parameter: {message}"),  # admin only
    "clock": ("-1130", "Invalid data sent for a parameter: {message}"),  # admin only
    "idempotency_key_reused": ("-1130", "Invalid data sent for a parameter: {message}"),  # admin only
    "not_found": ("-6020", "Project not exists"),
    "no_such_product": ("-6001", "Daily product not exists."),
    "too_precise": ("-1111", "Precision is over the maximum defined for this asset."),
    "too_many_places": ("-1111", "Precision is over the maximum defined for this asset."),
    "subscription_minimum": ("-6005", "Smaller than min purchase limit"),
    "redemption_minimum": ("-6006", "Redeem amount error"),
    "above_maximum": ("-6014", "Exceed up-limit allowed to purchased"),
    "quota_exceeded": ("-6014", "Exceed up-limit allowed to purchased"),
    "product_unavailable": ("-6004", "Product not in purchase status"),
    "product_not_started": ("-6004", "Product not in purchase status"),
    "not_eligible": ("-6003", "Product not exist or you don't have permission"),
    "beginners_only": ("-6003", "Product not exist or you don't have permission"),
    "insufficient_balance": ("-5002", "You have insufficient balance."),  # wallet: transfers
    "subscription_unfunded": ("-6012", "Balance not enough"),
    "amount_too_large": ("-6006", "Redeem amount error"),  # more than is held
    "order_id_required": (
        "-1102",
        "Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
    ),
    "redemption_refused": ("-6008", "Product not in redeem status"),
    "too_frequent": ("-6009", "Request frequency too high"),
    "conflict": ("-6013", "Purchasing failed"),
}


def _key(error: FlexearnError) -> str:
    if isinstance(error, NoSuchProduct):
        return "no_such_product"
    if isinstance(error, BelowMinimum):
        return f"{error.behavior}_minimum"
    if isinstance(error, TooPrecise):
        return "too_precise"
    if isinstance(error, TooManyPlaces):
        return "too_many_places"
    return error.code


def from_engine(error: FlexearnError) -> BinanceError:
    for row in (_key(error), *lineage(error)):
        if row in TABLE:
            code, msg = TABLE[row]
            return BinanceError(
                code, msg.replace("{param}", error.param or "request").replace("{message}", error.message)
            )
    return SYSTEM_ERROR
