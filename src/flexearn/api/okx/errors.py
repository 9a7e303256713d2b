"""The one table from engine errors to OKX codes, HTTP statuses and messages (SPEC §5)."""

from __future__ import annotations

from flexearn.api.facade import WireError
from flexearn.domain.errors import FlexearnError


class OkxError(WireError):
    """An answer in OKX's error envelope (HTTP 200 unless OKX says otherwise)."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(code, msg, status)


def empty(param: str) -> OkxError:
    return OkxError("50014", f"Parameter {param} can not be empty", 400)


def invalid(param: str, detail: str = "") -> OkxError:
    return OkxError("51000", f"Parameter {param} error" + (f": {detail}" if detail else ""), 400)


def header_missing(header: str) -> OkxError:
    code = {
        "OK-ACCESS-KEY": "50103",
        "OK-ACCESS-PASSPHRASE": "50104",
        "OK-ACCESS-SIGN": "50106",
        "OK-ACCESS-TIMESTAMP": "50107",
    }[header]
    return OkxError(code, f'Request header "{header}" cannot be empty', 401)


TOO_MANY = OkxError("50011", "Too Many Requests", 429)
JSON_SYNTAX = OkxError("50002", "JSON syntax error", 400)
EMPTY_BODY = OkxError("50000", "Body for POST request cannot be empty.", 400)
TIMESTAMP_EXPIRED = OkxError("50102", "Timestamp request expired", 401)
PASSPHRASE_INCORRECT = OkxError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect', 401)
INVALID_KEY = OkxError("50111", "Invalid OK-ACCESS-KEY", 401)
INVALID_TIMESTAMP = OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP", 401)
INVALID_SIGN = OkxError("50113", "Invalid Sign", 401)
NO_PERMISSION = OkxError("50120", "This API key doesn't have permission to use this function", 200)
UNAVAILABLE = OkxError("50001", "Service temporarily unavailable, please try again later", 503)
SYSTEM_ERROR = OkxError("50026", "System error, please try again later", 500)
NOT_FOUND = OkxError("404", "Not Found", 404)


def ip_not_allowed(ip: str) -> OkxError:
    return OkxError("50110", f"Your IP {ip} is not included in your API key's IP whitelist", 401)


def from_engine(error: FlexearnError) -> OkxError:
    """Map an engine error to OKX's code; every engine error has a row here."""
    param = error.param or "request"
    match error.code:
        case "missing_parameter":
            return empty(param)
        case "invalid_parameter" | "not_found" | "already_exists" | "clock":
            return OkxError("51000", error.message, 400)
        case "unsupported_currency":
            return OkxError("58003", "Savings does not support this currency type", 200)
        case "insufficient_balance":
            return OkxError("58350", "Insufficient balance", 200)
        case "amount_too_large":
            return OkxError("58005", error.message, 200)
    return SYSTEM_ERROR
