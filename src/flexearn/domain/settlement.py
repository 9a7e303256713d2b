"""The plan for settling one hour of one currency, computed before anything is written.

At hour H: pay interest for [H−1, H) on each position's `loan` as it stands at H, compound it
into the position, then match the new amounts against the demand for [H, H+1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from typing import NamedTuple

from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, compound
from flexearn.domain.market import Match, MatchingMode, OfferRow, match_auction_rows, match_pro_rata_rows
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

        def system(kind: AccountKind) -> AccountRef:
            return AccountRef.system(kind, ccy)

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


# Exact integer division, as wide as `money.mul_div_down` computes (120 digits, never reached).
_WIDE = Context(prec=120, rounding=ROUND_DOWN)
_HOURS_PER_YEAR = Decimal(HOURS_PER_YEAR)


def hour_interest(lent: Decimal, lender_rate: Decimal, places: int) -> Decimal:
    """One hour's interest on `lent` at an annual rate, rounded down to `places`.

    The same number as `mul_div_down(lent, lender_rate, HOURS_PER_YEAR, places)` (same value and
    exponent), computed as the truncated integer quotient of `lent × rate × 10^places` by 8760
    (exact), which is about twice as fast as a 120-digit division followed by a quantize.
    """
    scaled = _WIDE.scaleb(_WIDE.multiply(lent, lender_rate), places)
    return _WIDE.scaleb(_WIDE.divide_int(scaled, _HOURS_PER_YEAR), -places)


class PositionRow(NamedTuple):
    """A PositionState as a tuple, as settlement reads it: far cheaper to make than the object."""

    id: int
    user_id: int
    amt: Decimal
    loan: Decimal
    earnings: Decimal
    rate: Decimal
    rate_seq: int


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
    rows = [PositionRow(p.id, p.user_id, p.amt, p.loan, p.earnings, p.rate, p.seq) for p in positions]
    return plan_hour_rows(rows, last, terms, demand, borrow_rate)


def plan_hour_rows(
    positions: Sequence[PositionRow],
    last: LastMatch | None,
    terms: MarketTerms,
    demand: Decimal,
    borrow_rate: Decimal,
) -> HourPlan:
    """`plan_hour` on positions as tuples: the same plan, in the same order, with the same sums."""
    places = terms.places
    paid: dict[int, Decimal] = {}
    lent_total = ZERO
    if last is not None and last.lender_rate > 0:
        lender_rate = last.lender_rate
        for pid, _, _, loan, _, _, _ in positions:
            if loan > ZERO:
                lent_total += loan
                paid[pid] = hour_interest(loan, lender_rate, places)
    interest_total = sum(paid.values(), ZERO)
    if lent_total > 0 and last is not None:
        borrower_paid = mul_div_up(lent_total, last.borrow_rate, HOURS_PER_YEAR, places)
        fee_rate = last.borrow_rate - last.lender_rate
        insurance = mul_div_down(lent_total, fee_rate, HOURS_PER_YEAR, places)
    else:
        borrower_paid = insurance = ZERO
    rounding = borrower_paid - interest_total - insurance
    assert rounding >= 0, "borrowers must pay at least what lenders and the fund receive"

    get_paid = paid.get
    offers: list[OfferRow] = [
        (pid, amt + get_paid(pid, ZERO), rate, seq) for pid, _, amt, _, _, rate, seq in positions
    ]
    if terms.mode is MatchingMode.AUCTION:
        match = match_auction_rows(offers, demand, terms.insurance_fee, places)
    else:
        match = match_pro_rata_rows(offers, demand, borrow_rate, terms.insurance_fee, places)

    get_lent = match.lent.get
    changes = []
    for pid, user_id, amt, old_loan, earnings, _, _ in positions:
        interest = get_paid(pid, ZERO)
        loan = get_lent(pid, ZERO)
        if interest == ZERO and loan == old_loan:
            continue
        lent = old_loan if pid in paid else ZERO
        # positional, in field order: id, user_id, lent_last_hour, interest, amt, earnings, loan
        change = PositionChange(pid, user_id, lent, interest, amt + interest, earnings + interest, loan)
        changes.append(change)
    return HourPlan(tuple(changes), match, interest_total, insurance, borrower_paid, rounding, lent_total)
