"""The hour's plan: interest on last hour's loans, booked so that borrowers pay every share."""

from __future__ import annotations

from flexearn.domain.market import MatchingMode
from flexearn.domain.money import D
from flexearn.domain.settlement import LastMatch, MarketTerms, PositionState, plan_hour

TERMS = MarketTerms(MatchingMode.AUCTION, D("0.15"), 16)


def state(pid: int, amt: str, loan: str, rate: str) -> PositionState:
    return PositionState(pid, pid, D(amt), D(loan), D(0), D(rate), pid)


def test_worked_example_interest_then_rematch_on_the_compounded_amounts() -> None:
    positions = [state(1, "100", "100", "0.02"), state(2, "100", "50", "0.05"), state(3, "100", "0", "0.10")]
    plan = plan_hour(positions, LastMatch(D("0.05"), D("0.0425")), TERMS, D(150), D(0))
    changes = {c.id: c for c in plan.changes}
    assert changes[1].interest == D("0.0004851598173515")
    assert changes[2].interest == D("0.0002425799086757")
    assert 3 not in changes  # earned nothing, still not lent
    assert changes[1].loan == D("100.0004851598173515")  # lends its compounded amount
    assert changes[2].loan == D(150) - changes[1].loan
    assert plan.borrower_paid == plan.interest_total + plan.insurance_fee + plan.rounding
    assert plan.rounding >= 0


def test_the_hour_entry_balances_and_leaves_out_empty_legs() -> None:
    plan = plan_hour([state(1, "8760", "8760", "0.10")], LastMatch(D("0.10"), D("0.085")), TERMS, D(0), D(0))
    entry = plan.entry("USDT", "hour:1")
    assert entry is not None
    amounts = {leg.account.kind.value: leg.amount for leg in entry.legs}
    assert amounts == {"borrowers": D("-0.1"), "savings": D("0.085"), "insurance": D("0.015")}


def test_no_previous_match_pays_nothing_and_books_nothing() -> None:
    plan = plan_hour([state(1, "100", "0", "0.02")], None, TERMS, D(50), D(0))
    assert plan.interest_total == 0
    assert plan.entry("USDT", "hour:1") is None
    assert [c.loan for c in plan.changes] == [D(50)]
