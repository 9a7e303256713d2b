"""The plan for settling one hour of one currency, computed before anything is written.

At hour H: pay interest for [H−1, H) on each position's `loan` as it stands at H, compound it
into the position, then match the new amounts against the demand for [H, H+1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, compound
from flexearn.domain.market import Match, MatchingMode, Offer, match_auction, match_pro_rata
from flexearn.domain.money import HOURS_PER_YEAR, ZERO, mul_div_down, mul_div_up


@dataclass(frozen=True)
class PositionState:
    id: int
    user_id: int
    amt: Decimal
    loan: Decimal
    earnings: Decimal
    rate: Decimal
    seq: int


@dataclass(frozen=True)
class LastMatch:
    """Rates fixed by the previous hour's match, at which that hour's loans earn."""

    borrow_rate: Decimal
    lender_rate: Decimal


@dataclass(frozen=True)
class MarketTerms:
    mode: MatchingMode
    insurance_fee: Decimal
    places: int


@dataclass(frozen=True)
class PositionChange:
    id: int
    user_id: int
    lent_last_hour: Decimal
    interest: Decimal
    amt: Decimal
    earnings: Decimal
    loan: Decimal


@dataclass(frozen=True)
class HourPlan:
    changes: tuple[PositionChange, ...]  # only positions whose row changes
    match: Match
    interest_total: Decimal
    insurance_fee: Decimal
    borrower_paid: Decimal
    rounding: Decimal
    lent_last_hour: Decimal

    def entry(self, ccy: str, ref: str) -> Entry | None:
        """The hour's one journal entry: borrowers pay lenders, the insurance fund and rounding."""
        if self.borrower_paid == 0:
            return None
        system = lambda kind: AccountRef.system(kind, ccy)  # noqa: E731
        return compound(
            "interest",
            ccy,
            (
                Leg(system(AccountKind.BORROWERS), -self.borrower_paid),
                Leg(system(AccountKind.SAVINGS), self.interest_total),
                Leg(system(AccountKind.INSURANCE), self.insurance_fee),
                Leg(system(AccountKind.ROUNDING), self.rounding),
            ),
            ref,
        )


def hour_interest(lent: Decimal, lender_rate: Decimal, places: int) -> Decimal:
    """One hour's interest on `lent` at an annual rate, rounded down to `places`."""
    return mul_div_down(lent, lender_rate, HOURS_PER_YEAR, places)


def plan_hour(
    positions: Sequence[PositionState],
    last: LastMatch | None,
    terms: MarketTerms,
    demand: Decimal,
    borrow_rate: Decimal,
) -> HourPlan:
    """Interest for the hour that ends now, then the match for the hour that starts now.

    `borrow_rate` is the pro-rata market rate r_b (ignored in auction mode).
    """
    places = terms.places
    paid: dict[int, Decimal] = {}
    lent_total = ZERO
    if last is not None and last.lender_rate > 0:
        for p in positions:
            if p.loan > 0:
                lent_total += p.loan
                paid[p.id] = hour_interest(p.loan, last.lender_rate, places)
    interest_total = sum(paid.values(), ZERO)
    if lent_total > 0 and last is not None:
        borrower_paid = mul_div_up(lent_total, last.borrow_rate, HOURS_PER_YEAR, places)
        fee_rate = last.borrow_rate - last.lender_rate
        insurance = mul_div_down(lent_total, fee_rate, HOURS_PER_YEAR, places)
    else:
        borrower_paid = insurance = ZERO
    rounding = borrower_paid - interest_total - insurance
    assert rounding >= 0, "borrowers must pay at least what lenders and the fund receive"

    offers = [Offer(p.id, p.amt + paid.get(p.id, ZERO), p.rate, p.seq) for p in positions]
    if terms.mode is MatchingMode.AUCTION:
        match = match_auction(offers, demand, terms.insurance_fee, places)
    else:
        match = match_pro_rata(offers, demand, borrow_rate, terms.insurance_fee, places)

    changes = []
    for p in positions:
        interest = paid.get(p.id, ZERO)
        loan = match.lent.get(p.id, ZERO)
        if interest == 0 and loan == p.loan:
            continue
        changes.append(
            PositionChange(
                id=p.id,
                user_id=p.user_id,
                lent_last_hour=p.loan if p.id in paid else ZERO,
                interest=interest,
                amt=p.amt + interest,
                earnings=p.earnings + interest,
                loan=loan,
            )
        )
    return HourPlan(tuple(changes), match, interest_total, insurance, borrower_paid, rounding, lent_total)
