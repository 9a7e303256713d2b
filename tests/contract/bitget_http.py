"""A minimal Bitget v2 client for tests, signing as Bitget documents it (independent of the server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from flexearn.services.keys import NewKey

_last_ms = [0]


def _now_ms() -> str:
    """Now, a millisecond later than the last at least (the same request signed twice within one
    millisecond would be the same signature, a replay)."""
    _last_ms[0] = max(time.time_ns() // 1_000_000, _last_ms[0] + 1)
    return str(_last_ms[0])


def signed_headers(
    key: NewKey,
    method: str,
    target: str,
    body: str = "",
    *,
    timestamp: str | None = None,
    passphrase: str | None = None,
) -> dict[str, str]:
    ts = timestamp or _now_ms()
    mac = hmac.new(key.secret_key.encode(), f"{ts}{method}{target}{body}".encode(), hashlib.sha256)
    return {
        "ACCESS-KEY": key.api_key,
        "ACCESS-SIGN": base64.b64encode(mac.digest()).decode(),
        "ACCESS-TIMESTAMP": ts,
        "ACCESS-PASSPHRASE": key.passphrase if passphrase is None else passphrase,
        "Content-Type": "application/json",
        "locale": "en-US",
    }


class BitgetHttp:
    def __init__(self, base_url: str, key: NewKey | None = None) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.key = key

    def get(self, target: str, **overrides: Any) -> httpx.Response:
        headers = signed_headers(self.key, "GET", target, **overrides) if self.key else {}
        return self.client.get(target, headers=headers)

    def post(self, target: str, body: dict[str, Any] | str, **overrides: Any) -> httpx.Response:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        headers = signed_headers(self.key, "POST", target, text, **overrides) if self.key else {}
        return self.client.post(target, content=text.encode(), headers=headers)
