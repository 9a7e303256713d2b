"""The one table from engine errors, authentication failures and refusals to Bitget codes (SPEC §5)."""

from __future__ import annotations

from flexearn.api.auth import AuthFailure, Failure
from flexearn.api.facade import WireError
from flexearn.domain.catalog_errors import BelowMinimum, NoSuchProduct, QuotaExceeded, TooPrecise
from flexearn.domain.errors import FlexearnError, lineage
from flexearn.domain.money import plain


class BitgetError(WireError):
    """An answer in Bitget's error envelope (HTTP 400 unless Bitget says otherwise)."""


def empty(param: str) -> BitgetError:
    return BitgetError("40019", f"Parameter {param} cannot be empty")


def invalid(param: str, detail: str = "", status: int = 400) -> BitgetError:
    return BitgetError(
        "40017", f"Parameter verification failed: {param}" + (f" ({detail})" if detail else ""), status
    )


HEADER_CODES = {
    "ACCESS-KEY": "40001",
    "ACCESS-SIGN": "40002",
    "ACCESS-TIMESTAMP": "40003",
    "ACCESS-PASSPHRASE": "40011",
}


def header_missing(header: str) -> BitgetError:
    return BitgetError(HEADER_CODES[header], f"{header} header is empty", 400)


INVALID_TIMESTAMP = BitgetError("40005", "Invalid ACCESS-TIMESTAMP", 400)
JSON_SYNTAX = BitgetError("40017", "Parameter verification failed: the body is not a JSON object", 400)
TOO_MANY = BitgetError("429", "Too Many Requests", 429)
# Bitget's "server is busy" (not 40010, which ccxt and typed-bitget read as a signature failure):
# ccxt raises ExchangeNotAvailable for it, a retryable network error, as it does for OKX's 50001.
UNAVAILABLE = BitgetError("40604", "Server is busy, please try again later", 503)
SYSTEM_ERROR = BitgetError("40015", "System error", 500)
NOT_FOUND = BitgetError("40404", "Request URL NOT FOUND", 404)

FAILURES = {
    Failure.EXPIRED_TIMESTAMP: BitgetError(
        "40008", "Invalid ACCESS-TIMESTAMP: request timestamp expired", 400
    ),
    Failure.UNKNOWN_KEY: BitgetError("40006", "Invalid ACCESS-KEY", 400),
    Failure.EXPIRED_KEY: BitgetError("40006", "Invalid ACCESS-KEY: the API key has expired", 400),
    Failure.BAD_PASSPHRASE: BitgetError("40012", "apikey/password is incorrect", 400),
    Failure.BAD_SIGNATURE: BitgetError("40009", "sign signature error", 400),
    Failure.REPLAYED: BitgetError("40009", "sign signature error: this signed request was already used", 400),
    Failure.NO_PERMISSION: BitgetError("40014", "Incorrect permissions", 400),
    Failure.OTHER_FACADE: BitgetError(
        "40014", "Incorrect permissions: this API key is not enabled for this API", 400
    ),
}


def from_auth(failure: AuthFailure) -> BitgetError:
    if failure.failure is Failure.IP_REFUSED:
        return BitgetError("40018", f"Invalid IP {failure.detail}", 400)
    return FAILURES[failure.failure]


# Engine error code → Bitget's code and message. Bitget's Earn codes (the 59xxx family) where their
# meaning matches: source of each, unless its row says otherwise, Bitget's REST API error-code
# table, https://www.bitget.com/api-doc/spot/error-code/restapi (as captured in
# rosssaunders/coincise, docs/bitget/error_codes.md); "{0}" is filled in by `_detail`. ccxt's
# bitget knows none of them (its `exceptions` map has no 59xxx code and none of these messages),
# so it raises its base ExchangeError for each: the exchange refused, neither an authentication
# failure nor a retryable network error. SPEC §5's parameter codes for the rest. An error without
# a row of its own takes its nearest ancestor's (`lineage`); "{message}" and "{param}" are the
# error's, "{0}" what `_detail` finds.
TABLE: dict[str, tuple[str, str]] = {  # keyed by engine error code (`_detail` refines a few)
    "missing_parameter": ("40019", "Parameter {param} cannot be empty"),
    "invalid_parameter": ("40017", "Parameter verification failed: {message}"),
    "unsupported_currency": ("40017", "Parameter verification failed: {message}"),
    "already_exists": ("40017", "Parameter verification failed: {message}"),  # admin only
    "clock": ("40017", "Parameter verification failed: {message}"),  # admin only
    "idempotency_key_reused": ("40017", "Parameter verification failed: {message}"),  # admin only
    "not_found": ("40034", "Parameter does not exist: {message}"),  # "Parameter {0} does not exist"
    "too_precise": ("40017", "Parameter verification failed: {message}"),  # neither behaviour's
    "below_minimum": ("40017", "Parameter verification failed: {message}"),  # neither behaviour's
    "insufficient_balance": ("43012", "Insufficient balance"),  # SPEC §5; ccxt: InsufficientFunds
    "no_such_product": ("59049", "Product does not exist"),
    "product_not_started": ("59003", "This product is not available for purchase yet"),
    # paused, sold out, ended, offline; a VIP product for a user who is not
    "product_unavailable": ("59029", "Product cannot be subscribe"),
    "not_eligible": ("59029", "Product cannot be subscribe"),
    "beginners_only": (
        "59027",
        "This product is a novice product. You are not a novice user. Please choose another product.",
    ),
    "subscription_precision": ("59010", "The precision of the subscription amount cannot exceed {0} digits"),
    "redemption_precision": ("59034", "The redemption amount accuracy cannot exceed {0} digits"),
    "subscription_minimum": ("59020", "Minimum limit for single subscription"),
    "redemption_minimum": ("59035", "The redemption amount must be greater than the minimum limit"),
    "above_maximum": ("59030", "Exceeding the max amount for once subscribe"),
    "quota_exceeded": ("59023", "Insufficient product remaining quota, remaining {0}"),
    # 59011 and 59022 read alike; each sits among the codes of its operation (59007-59010
    # subscription limits; 59021 redemption suspended, 59024/59025 redemption parameters)
    "subscription_unfunded": ("59011", "Insufficient balance"),
    "amount_too_large": ("59022", "Insufficient balance"),  # a redemption of more than is held
    "order_id_required": ("59025", "orderId cannot be empty when redeeming regular financial management"),
    "redemption_refused": ("59031", "Cannot perform redemption operation"),
    # Bitget's Redeem Savings: "The interval of each redeem should be more than 1min, or it would
    # return error"
    "too_frequent": ("59044", "Operations are frequent, please try again later."),
    "conflict": ("59046", "Transaction failed"),  # the state refuses a well-formed request
}


def _detail(error: FlexearnError) -> tuple[str, str]:
    """The row's key, and what fills its "{0}"."""
    if isinstance(error, NoSuchProduct):
        return "no_such_product", ""
    if isinstance(error, TooPrecise):
        return f"{error.behavior}_precision", str(error.places)
    if isinstance(error, BelowMinimum):
        return f"{error.behavior}_minimum", ""
    if isinstance(error, QuotaExceeded):
        return error.code, plain(error.remaining)
    return error.code, ""


def from_engine(error: FlexearnError) -> BitgetError:
    """The engine error in Bitget's words: the row of its refined key, its code or its nearest
    ancestor's. None is the base's (`error`): an error class without a row answers 40015, and a
    test fails."""
    key, detail = _detail(error)
    for row in (key, *lineage(error)):
        if row in TABLE:
            code, msg = TABLE[row]
            filled = msg.replace("{0}", detail).replace("{param}", error.param or "request")
            return BitgetError(code, filled.replace("{message}", error.message), 400)
    return SYSTEM_ERROR
