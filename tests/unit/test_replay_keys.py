"""The replay window's keys (`services.replays.digest`): one per signature, in the order the
signatures were signed, so that claims go to the end of the key's index and the prune takes a run
from its start."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from flexearn.adapters import tables as t
from flexearn.services.replays import digest

SIGNATURES = st.text(min_size=1, max_size=200)
TIMELY = st.integers(min_value=0, max_value=10**13 - 1)  # 13 digits: until the year 2286


@given(SIGNATURES, SIGNATURES, TIMELY, TIMELY)
def test_keys_sort_as_their_signatures_were_signed(a: str, b: str, sent_a: int, sent_b: int) -> None:
    if sent_a < sent_b:
        assert digest(a, sent_a) < digest(b, sent_b)
    assert (digest(a, sent_a) == digest(b, sent_b)) == (a == b and sent_a == sent_b)


@given(SIGNATURES, st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_key_is_the_time_then_the_hash_and_always_fits_the_column(signature: str, sent: int) -> None:
    key = digest(signature, sent)
    assert len(key) == 77 == t.seen_signature.c.digest.type.length
    assert key[13:] == hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()
    assert key[:13] == f"{min(max(sent, 0), 10**13 - 1):013d}"  # a time no timely request has: clamped


def test_a_signature_that_is_not_valid_text_still_has_a_key() -> None:
    # a header decoded with surrogate escapes (bytes that are not UTF-8) is hashed as it came
    assert len(digest("\udcff\udcfe", 1_764_000_000_000)) == 77
