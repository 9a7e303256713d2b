"""The Verifier keeps a key it has loaded and asks the database for revocations at most once a
second for the whole process, not once per request (real keys on SQLite and PostgreSQL)."""

from __future__ import annotations

import time

import pytest

from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.auth import REVOCATION_CHECK_SECONDS, AuthFailure, Failure, SignedRequest, Verifier, sign
from flexearn.bootstrap import Flexearn
from flexearn.services import accounts, keys


def signed(key: keys.NewKey, nonce: int) -> tuple[SignedRequest, int]:
    now = int(time.time() * 1000)
    target = f"/api/v5/finance/savings/balance?n={nonce}".encode()
    signature = sign(key.secret_key, str(now), "GET", target, b"")
    stamp = str(now)
    request = SignedRequest(key.api_key, signature, stamp, now, key.passphrase, "GET", target, b"", "::1")
    return request, now


def test_keys_are_kept_and_revocations_asked_once_a_second(app: Flexearn) -> None:
    box = SecretBox(generate_master_key())
    user = accounts.create_user(app.uow(), "kept")
    key = keys.create_key(app.uow(), box, user, "read")
    loads: list[str] = []
    checks: list[int] = []

    def load(api_key: str) -> keys.KeyRecord | None:
        loads.append(api_key)
        return keys.load_key(app.read_uow(), box, api_key)

    def revoked(since_ms: int) -> list[str]:
        checks.append(since_ms)
        return keys.revoked_since(app.read_uow(), since_ms)

    verifier = Verifier(load, revoked)
    started = time.monotonic()
    for n in range(200):
        verifier.verify(*signed(key, n), "read", "okx")
    within_the_second = time.monotonic() - started < REVOCATION_CHECK_SECONDS
    assert loads == [key.api_key]  # one load for 200 requests
    if within_the_second:  # on a slow machine the first check may fall due meanwhile
        assert checks == []
        assert verifier.ready(key.api_key, key.passphrase)
    keys.revoke_key(app.uow(), key.api_key)
    time.sleep(REVOCATION_CHECK_SECONDS + 0.1)
    assert not verifier.ready(key.api_key, key.passphrase)  # due: the check runs in a slot
    with pytest.raises(AuthFailure) as refused:
        verifier.verify(*signed(key, 1000), "read", "okx")
    assert refused.value.failure is Failure.UNKNOWN_KEY
    assert len(checks) >= 1
    assert loads == [key.api_key] * 2  # forgotten, loaded again: revoked
    asked = len(checks)
    for n in range(50):  # a revoked key is refused from memory, as is an unknown one
        with pytest.raises(AuthFailure):
            verifier.verify(*signed(key, 2000 + n), "read", "okx")
    unknown = keys.NewKey("00000000-0000-0000-0000-000000000000", "F" * 32, "x")
    for n in range(50):
        with pytest.raises(AuthFailure):
            verifier.verify(*signed(unknown, n), "read", "okx")
    assert loads == [key.api_key] * 2 + [unknown.api_key]
    assert len(checks) <= asked + 1
