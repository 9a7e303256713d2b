"""Only a caller holding the secret gets a passphrase checked (its slow hash costs ~0.1 s of CPU):
knowing an API key is not enough to make the server hash guesses, nor to lock its owner out."""

from __future__ import annotations

import dataclasses
import time

import pytest

from flexearn.adapters import secrets
from flexearn.api.auth import AuthFailure, Failure, SignedRequest, Verifier, sign
from flexearn.services.keys import KeyInfo, KeyRecord

SECRET, PASSPHRASE = "S" * 32, "right-passphrase"
INFO = KeyInfo("key-1", 1, ("read",), ("okx",), (), None, 0, None)
RECORD = KeyRecord(INFO, SECRET, secrets.hash_passphrase(PASSPHRASE))


def request(passphrase: str, nonce: int, secret: str = SECRET) -> tuple[SignedRequest, int]:
    now = int(time.time() * 1000)
    target = f"/api/v5/finance/savings/balance?n={nonce}".encode()
    signature = sign(secret, str(now), "GET", target, b"")
    return SignedRequest("key-1", signature, str(now), now, passphrase, "GET", target, b"", "127.0.0.1"), now


def failure(verifier: Verifier, signed: SignedRequest, now: int) -> Failure | None:
    try:
        verifier.verify(signed, now, "read", "okx")
    except AuthFailure as refused:
        return refused.failure
    return None


def test_guesses_without_the_secret_never_reach_the_slow_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []
    real = secrets.verify_passphrase
    monkeypatch.setattr("flexearn.api.auth.verify_passphrase", lambda p, h: hashed.append(p) or real(p, h))
    verifier = Verifier(lambda key: RECORD, lambda since: ())
    for n in range(20):  # an attacker who knows the key, not the secret
        assert failure(verifier, *request(f"guess-{n}", n, secret="not-the-secret")) is Failure.BAD_SIGNATURE
    assert hashed == []
    # The owner is not locked out by them; a validly signed wrong passphrase is still refused.
    assert failure(verifier, *request("wrong", 100)) is Failure.BAD_PASSPHRASE
    assert failure(verifier, *request(PASSPHRASE, 101)) is None
    assert hashed == ["wrong", PASSPHRASE]


@pytest.mark.parametrize("signature", ["é" * 44, "\udcff"])
def test_a_non_ascii_signature_is_a_bad_signature(signature: str) -> None:
    verifier = Verifier(lambda key: RECORD, lambda since: ())
    signed, now = request(PASSPHRASE, 1)
    with pytest.raises(AuthFailure) as refused:
        verifier.verify(dataclasses.replace(signed, signature=signature), now, "read", "okx")
    assert refused.value.failure is Failure.BAD_SIGNATURE
