"""The one table from engine errors, authentication failures and refusals to OKX's codes, HTTP
statuses and messages (SPEC §5). Sources: OKX's error-code page (Docs², docs/fidelity.md); a row
without one says so here and in docs/fidelity.md."""

from __future__ import annotations

from flexearn.api.auth import AuthFailure, Failure
from flexearn.api.facade import WireError
from flexearn.domain.errors import FlexearnError, lineage


class OkxError(WireError):
    """An answer in OKX's error envelope (HTTP 200 unless OKX says otherwise)."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(code, msg, status)


def empty(param: str) -> OkxError:
    return OkxError("50014", f"Parameter {param} can not be empty", 400)


def invalid(param: str, detail: str = "", status: int = 400) -> OkxError:
    return OkxError("51000", f"Parameter {param} error" + (f": {detail}" if detail else ""), status)


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
INVALID_TIMESTAMP = OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP", 401)
UNAVAILABLE = OkxError("50001", "Service temporarily unavailable, please try again later", 503)
SYSTEM_ERROR = OkxError("50026", "System error, please try again later", 500)
NOT_FOUND = OkxError("404", "Not Found", 404)

FAILURES = {
    Failure.EXPIRED_TIMESTAMP: OkxError("50102", "Timestamp request expired", 401),
    Failure.UNKNOWN_KEY: OkxError("50111", "Invalid OK-ACCESS-KEY", 401),
    Failure.EXPIRED_KEY: OkxError("50111", "Invalid OK-ACCESS-KEY: the API key has expired", 401),
    Failure.BAD_PASSPHRASE: OkxError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect', 401),
    Failure.BAD_SIGNATURE: OkxError("50113", "Invalid Sign", 401),
    Failure.REPLAYED: OkxError("50113", "Invalid Sign: this signed request was already used", 401),
    Failure.NO_PERMISSION: OkxError(
        "50120", "This API key doesn't have permission to use this function", 200
    ),
    # a key its owner did not enable for this façade (`keys.FACADES`): OKX's "no permission"
    Failure.OTHER_FACADE: OkxError("50120", "This API key doesn't have permission to use this API", 200),
}


def from_auth(failure: AuthFailure) -> OkxError:
    if failure.failure is Failure.IP_REFUSED:
        return OkxError(
            "50110", f"Your IP {failure.detail} is not included in your API key's IP whitelist", 401
        )
    return FAILURES[failure.failure]


# Engine error code → OKX's code, message and HTTP status; an error without a row of its own takes
# its nearest ancestor's (`lineage`). "{message}" and "{param}" are the error's. OKX's Simple Earn
# codes (58xxx) for the market; its Finance codes (517xx) for what only catalog products refuse
# (no OKX endpoint reaches them today: the rows keep the table whole). Rows marked "ours" have no
# OKX code of that meaning: they answer with OKX's generic parameter error.
TABLE: dict[str, tuple[str, str, int]] = {
    "missing_parameter": ("50014", "Parameter {param} can not be empty", 400),
    "invalid_parameter": ("51000", "{message}", 400),
    "not_found": ("51000", "{message}", 400),  # ours: OKX names no "does not exist" in general
    "already_exists": ("51000", "{message}", 400),  # ours (admin only)
    "clock": ("51000", "{message}", 400),  # ours: the clock refuses (admin only)
    "conflict": ("51000", "{message}", 400),  # ours: the state refuses a well-formed request
    "idempotency_key_reused": ("51000", "{message}", 400),  # ours (admin only)
    "unsupported_currency": ("58003", "Savings does not support this currency type", 200),
    "insufficient_balance": ("58350", "Insufficient balance", 200),
    "amount_too_large": ("58005", "{message}", 200),
    # OKX Finance (error-code page, 51700-51799)
    "product_unavailable": ("51731", "Product is currently suspended for purchase", 200),
    "not_eligible": ("51732", "{message}", 200),  # "Required user KYC level not met": the nearest
    "too_precise": ("51000", "{message}", 400),
    "below_minimum": ("51000", "{message}", 400),  # 51727 names a subscription's minimum only
    "above_maximum": ("51728", "The subscription quantity is above the maximum limit", 200),
    "quota_exceeded": ("51728", "{message}", 200),  # what remains of the quota is the limit
    "redemption_refused": ("51723", "Early redemption is not supported", 200),
    "too_frequent": ("50040", "Too frequent operations, please try again later", 200),
}


def from_engine(error: FlexearnError) -> OkxError:
    """The engine error in OKX's words: the row of its code or its nearest ancestor's. None is
    the base's (`error`): an error class without a row answers 50026, and a test fails."""
    for key in lineage(error):
        if key in TABLE:
            code, msg, status = TABLE[key]
            return OkxError(code, msg.format(message=error.message, param=error.param or "request"), status)
    return SYSTEM_ERROR
