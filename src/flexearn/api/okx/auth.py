"""OKX request signing, verified over the request exactly as received (SPEC §5).

sign = Base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath[?query] + body)), with the raw
path and query string and the raw body bytes, so every client's encoding verifies as it sent it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_to_bytes

from flexearn.adapters.secrets import verify_passphrase
from flexearn.api.okx import errors
from flexearn.services.keys import KeyRecord

WINDOW_MS = 30_000
KEY_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Caller:
    user_id: int
    api_key: str


def sign(secret: str, timestamp: str, method: str, target: bytes, body: bytes) -> str:
    message = timestamp.encode() + method.upper().encode() + target + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def parse_timestamp(text: str) -> int:
    """OKX's `2020-12-08T09:08:57.715Z` as epoch milliseconds."""
    if not text.endswith("Z") or "T" not in text:
        raise errors.INVALID_TIMESTAMP
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise errors.INVALID_TIMESTAMP from None
    return int(moment.timestamp() * 1000)


class Authenticator:
    """Checks keys, passphrases, signatures, permissions, IPs, expiry and replays."""

    def __init__(self, load_key: Callable[[str], KeyRecord | None], window_ms: int = WINDOW_MS) -> None:
        self._load_key = load_key
        self._window_ms = window_ms
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}
        self._passphrases: set[tuple[str, str, bytes]] = set()  # verified (key, hash, sha256(passphrase))
        self._seen: dict[str, int] = {}  # signature → when it may be forgotten (ms)
        self._lock = threading.Lock()

    def authenticate(
        self,
        method: str,
        target: bytes,
        body: bytes,
        headers: Mapping[str, str],
        client_ip: str,
        now_ms: int,
        permission: str,
    ) -> Caller:
        for header in ("OK-ACCESS-KEY", "OK-ACCESS-SIGN", "OK-ACCESS-TIMESTAMP", "OK-ACCESS-PASSPHRASE"):
            if not headers.get(header):
                raise errors.header_missing(header)
        api_key, signature = headers["OK-ACCESS-KEY"], headers["OK-ACCESS-SIGN"]
        timestamp, passphrase = headers["OK-ACCESS-TIMESTAMP"], headers["OK-ACCESS-PASSPHRASE"]
        sent_ms = parse_timestamp(timestamp)
        if abs(now_ms - sent_ms) > self._window_ms:
            raise errors.TIMESTAMP_EXPIRED
        record = self._key(api_key)
        info = record.info if record else None
        if record is None or info is None or info.revoked_at is not None:
            raise errors.INVALID_KEY
        if info.expires_at is not None and now_ms >= info.expires_at:
            raise errors.OkxError("50111", "Invalid OK-ACCESS-KEY: the API key has expired", 401)
        if not self._passphrase_ok(record, passphrase):
            raise errors.PASSPHRASE_INCORRECT
        if not any(
            hmac.compare_digest(sign(record.secret, timestamp, method, candidate, body), signature)
            for candidate in _signed_targets(target)
        ):
            raise errors.INVALID_SIGN
        if info.ip_allowlist and not _ip_allowed(client_ip, info.ip_allowlist):
            raise errors.ip_not_allowed(client_ip)
        if permission not in info.permissions:
            raise errors.NO_PERMISSION
        self._refuse_replay(signature, now_ms)
        return Caller(info.user_id, api_key)

    def _key(self, api_key: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._keys.get(api_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = self._load_key(api_key)
        self._keys[api_key] = (now + KEY_CACHE_SECONDS, record)
        return record

    def _passphrase_ok(self, record: KeyRecord, passphrase: str) -> bool:
        # The slow hash is verified once per process and passphrase, not on every request.
        token = (record.info.api_key, record.passphrase_hash, hashlib.sha256(passphrase.encode()).digest())
        if token in self._passphrases:
            return True
        if not verify_passphrase(passphrase, record.passphrase_hash):
            return False
        self._passphrases.add(token)
        return True

    def _refuse_replay(self, signature: str, now_ms: int) -> None:
        with self._lock:
            if signature in self._seen:
                raise errors.OkxError("50113", "Invalid Sign: this signed request was already used", 401)
            # A signature is only valid inside the timestamp window on either side of now.
            self._seen[signature] = now_ms + 2 * self._window_ms
            if len(self._seen) > 10_000:
                for old in [s for s, until in self._seen.items() if until < now_ms]:
                    del self._seen[old]


def _signed_targets(target: bytes) -> list[bytes]:
    """The target as received; and with its query percent-decoded, as python-okx signs it.

    python-okx signs `?ccy=a b` while its HTTP client sends `?ccy=a%20b`; ccxt signs what it sends.
    Both spellings name the same parameters, so accepting either admits nothing new.
    """
    path, _, query = target.partition(b"?")
    decoded = unquote_to_bytes(query)
    if decoded == query:
        return [target]
    return [target, path + b"?" + decoded]


def _ip_allowed(ip: str, allowlist: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowlist)
