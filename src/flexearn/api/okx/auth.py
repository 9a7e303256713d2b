"""OKX's signing headers and timestamp format (its codes for each failure: `errors.FAILURES`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from flexearn.api.auth import SignedRequest, read_signed_request
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
