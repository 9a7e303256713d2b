"""A minimal OKX v5 client for tests, signing as OKX documents it (independent of the server code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from flexearn.services.keys import NewKey

_last_ms = [0]


def okx_timestamp(shift: timedelta = timedelta(0)) -> str:
    """Now (+ `shift`), in OKX's format; unshifted, a millisecond later than the last at least: the
    same request signed twice within one millisecond would be the same signature, a replay."""
    at = datetime.now(UTC) + shift
    if not shift:
        ms = max(int(at.timestamp() * 1000), _last_ms[0] + 1)
        _last_ms[0] = ms
        at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signed_headers(
    key: NewKey,
    method: str,
    target: str,
    body: str = "",
    *,
    timestamp: str | None = None,
    passphrase: str | None = None,
) -> dict[str, str]:
    ts = timestamp or okx_timestamp()
    mac = hmac.new(key.secret_key.encode(), f"{ts}{method}{target}{body}".encode(), hashlib.sha256)
    return {
        "OK-ACCESS-KEY": key.api_key,
        "OK-ACCESS-SIGN": base64.b64encode(mac.digest()).decode(),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": key.passphrase if passphrase is None else passphrase,
        "Content-Type": "application/json",
    }


class OkxHttp:
    def __init__(self, base_url: str, key: NewKey | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.key = key

    def get(self, target: str, **header_overrides: Any) -> httpx.Response:
        headers = signed_headers(self.key, "GET", target, **header_overrides) if self.key else {}
        return self.client.get(target, headers=headers)

    def post(self, target: str, body: dict[str, Any] | str, **header_overrides: Any) -> httpx.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        headers = signed_headers(self.key, "POST", target, text, **header_overrides) if self.key else {}
        return self.client.post(target, content=text.encode(), headers=headers)
