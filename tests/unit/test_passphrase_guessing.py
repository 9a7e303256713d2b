"""Guessing passphrases for a known API key costs the server a few slow hashes per window, no more."""

from __future__ import annotations

import dataclasses
import time

import pytest

from flexearn.adapters.secrets import hash_passphrase
from flexearn.api.auth import AuthFailure, Failure, SignedRequest, Verifier, sign
from flexearn.services.keys import KeyInfo, KeyRecord

SECRET, PASSPHRASE = "S" * 32, "right-passphrase"
RECORD = KeyRecord(KeyInfo("key-1", 1, ("read",), (), None, 0, None), SECRET, hash_passphrase(PASSPHRASE))


def request(passphrase: str, now_ms: int, nonce: int) -> SignedRequest:
    target = f"/api/v5/finance/savings/balance?n={nonce}".encode()
    timestamp = str(now_ms)
    signature = sign(SECRET, timestamp, "GET", target, b"")
    return SignedRequest("key-1", signature, timestamp, now_ms, passphrase, "GET", target, b"", "127.0.0.1")


def failure(verifier: Verifier, passphrase: str, nonce: int) -> Failure | None:
    now = int(time.time() * 1000)
    try:
        verifier.verify(request(passphrase, now, nonce), now, "read")
    except AuthFailure as refused:
        return refused.failure
    return None


def test_after_a_few_wrong_passphrases_even_the_right_one_waits_for_the_window() -> None:
    verifier = Verifier(lambda key: RECORD if key == "key-1" else None, slow_checks_per_key=(3, 1.0))
    assert [failure(verifier, f"guess-{n}", n) for n in range(3)] == [Failure.BAD_PASSPHRASE] * 3
    # The budget of slow checks is spent: the right passphrase is not even hashed now.
    assert failure(verifier, PASSPHRASE, 10) is Failure.BAD_PASSPHRASE
    time.sleep(1.05)
    assert failure(verifier, PASSPHRASE, 11) is None
    # Once verified, it is remembered: guesses no longer lock the owner out.
    assert [failure(verifier, f"guess-{n}", 20 + n) for n in range(5)] == [Failure.BAD_PASSPHRASE] * 5
    assert failure(verifier, PASSPHRASE, 30) is None


@pytest.mark.parametrize("signature", ["é" * 44, "\udcff"])
def test_a_non_ascii_signature_is_a_bad_signature(signature: str) -> None:
    verifier = Verifier(lambda key: RECORD)
    now = int(time.time() * 1000)
    forged = dataclasses.replace(request(PASSPHRASE, now, 1), signature=signature)
    with pytest.raises(AuthFailure) as refused:
        verifier.verify(forged, now, "read")
    assert refused.value.failure is Failure.BAD_SIGNATURE
