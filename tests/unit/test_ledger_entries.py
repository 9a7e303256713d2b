"""Journal entries balance by construction."""

from __future__ import annotations

import pytest

from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, UnbalancedEntry, transfer
from flexearn.domain.money import D


def test_a_transfer_balances_and_tags_only_the_savings_leg() -> None:
    entry = transfer(
        "purchase",
        "USDT",
        AccountRef.funding(1, "USDT"),
        AccountRef.system(AccountKind.SAVINGS, "USDT"),
        D(5),
        position_id=9,
    )
    assert [(leg.amount, leg.position_id) for leg in entry.legs] == [(D(-5), None), (D(5), 9)]


def test_unbalanced_zero_or_mixed_currency_entries_are_refused() -> None:
    funding = AccountRef.funding(1, "USDT")
    external = AccountRef.system(AccountKind.EXTERNAL, "USDT")
    with pytest.raises(UnbalancedEntry, match="sum"):
        Entry("x", "USDT", (Leg(funding, D(1)), Leg(external, D("-0.9"))))
    with pytest.raises(UnbalancedEntry, match="zero"):
        Entry("x", "USDT", (Leg(funding, D(0)),))
    with pytest.raises(UnbalancedEntry, match="BTC"):
        Entry("x", "USDT", (Leg(funding, D(1)), Leg(AccountRef.system(AccountKind.EXTERNAL, "BTC"), D(-1))))


def test_user_accounts_need_an_owner_and_system_accounts_have_none() -> None:
    with pytest.raises(ValueError, match="need"):
        AccountRef(AccountKind.FUNDING, "USDT")
    with pytest.raises(ValueError, match="take no"):
        AccountRef(AccountKind.INSURANCE, "USDT", 3)
