"""The one table from engine and authentication failures to Bitget codes (SPEC §5)."""

from __future__ import annotations

from flexearn.api.auth import AuthFailure, Failure
from flexearn.api.facade import WireError
from flexearn.domain.errors import FlexearnError


class BitgetError(WireError):
    """An answer in Bitget's error envelope (HTTP 400 unless Bitget says otherwise)."""


def empty(param: str) -> BitgetError:
    return BitgetError("40019", f"Parameter {param} cannot be empty")


def invalid(param: str, detail: str = "") -> BitgetError:
    return BitgetError(
        "40017", f"Parameter verification failed: {param}" + (f" ({detail})" if detail else "")
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
}


def from_auth(failure: AuthFailure) -> BitgetError:
    if failure.failure is Failure.IP_REFUSED:
        return BitgetError("40018", f"Invalid IP {failure.detail}", 400)
    return FAILURES[failure.failure]


def from_engine(error: FlexearnError) -> BitgetError:
    param = error.param or "request"
    match error.code:
        case "missing_parameter":
            return empty(param)
        case "insufficient_balance":
            return BitgetError("43012", "Insufficient balance", 400)
        case "not_found":
            return BitgetError("40034", f"Parameter does not exist: {error.message}", 400)
        case _:
            return BitgetError("40017", f"Parameter verification failed: {error.message}", 400)
