"""OKX's signing headers and timestamp format, and its codes for each authentication failure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from flexearn.api.auth import AuthFailure, Failure, SignedRequest, read_signed_request
from flexearn.api.okx import errors

HEADERS = ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE")


def parse_timestamp(text: str) -> int:
    """OKX's `2020-12-08T09:08:57.715Z` as epoch milliseconds."""
    if not text.endswith("Z") or "T" not in text:
        raise errors.INVALID_TIMESTAMP
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise errors.INVALID_TIMESTAMP from None
    return int(moment.timestamp() * 1000)


def signed_request(
    method: str, target: bytes, body: bytes, headers: Mapping[str, str], client_ip: str
) -> SignedRequest:
    return read_signed_request(
        headers, HEADERS, errors.header_missing, parse_timestamp, method, target, body, client_ip
    )


FAILURES = {
    Failure.EXPIRED_TIMESTAMP: errors.TIMESTAMP_EXPIRED,
    Failure.UNKNOWN_KEY: errors.INVALID_KEY,
    Failure.EXPIRED_KEY: errors.OkxError("50111", "Invalid OK-ACCESS-KEY: the API key has expired", 401),
    Failure.BAD_PASSPHRASE: errors.PASSPHRASE_INCORRECT,
    Failure.BAD_SIGNATURE: errors.INVALID_SIGN,
    Failure.REPLAYED: errors.OkxError("50113", "Invalid Sign: this signed request was already used", 401),
    Failure.NO_PERMISSION: errors.NO_PERMISSION,
}


def okx_error(failure: AuthFailure) -> errors.OkxError:
    if failure.failure is Failure.IP_REFUSED:
        return errors.ip_not_allowed(failure.detail)
    return FAILURES[failure.failure]
