"""The plan for settling one hour of one currency, computed before anything is written.

At hour H: pay interest for [H−1, H) on each position's `loan` as it stands at H, compound it
into the position, then match the new amounts against the demand for [H, H+1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from itertools import repeat
from typing import Any, NamedTuple

from flexearn.domain.ledger import AccountKind, AccountRef, Entry, Leg, compound
from flexearn.domain.market import Match, MatchingMode, OfferRow, match_auction_rows, match_pro_rata_rows
from flexearn.domain.money import HOURS_PER_YEAR, ZERO, mul_div_down, mul_div_up, round_down


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


class PositionChange(NamedTuple):
    """A position's new row (a tuple: settlement makes one per position, an hour's hot path)."""

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
        return hour_entry(ccy, ref, self.interest_total, self.insurance_fee, self.rounding)


def hour_entry(ccy: str, ref: str, interest: Decimal, insurance: Decimal, rounding: Decimal) -> Entry | None:
    """Borrowers pay `interest` to the lenders (the savings control account), `insurance` to the
    fund and what rounding left; None when they pay nothing. An hour settled in one transaction
    books it all in one entry; in ranges, each range books its interest (`range_entry`) and the
    close the rest (interest 0)."""
    paid = interest + insurance + rounding
    if paid == 0:
        return None

    def system(kind: AccountKind) -> AccountRef:
        return AccountRef.system(kind, ccy)

    return compound(
        "interest",
        ccy,
        (
            Leg(system(AccountKind.BORROWERS), -paid),
            Leg(system(AccountKind.SAVINGS), interest),
            Leg(system(AccountKind.INSURANCE), insurance),
            Leg(system(AccountKind.ROUNDING), rounding),
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
    return next(hour_interests((lent,), lender_rate, places))


def hour_interests(lent: Iterable[Decimal], lender_rate: Decimal, places: int) -> Iterator[Decimal]:
    """`hour_interest` of each amount of `lent` at one rate: `rate × 10^places` is made once, and
    the three exact steps per amount run in C (no Python call per amount; an hour's hot path)."""
    scaled_rate = _WIDE.scaleb(lender_rate, places)
    scaled = map(_WIDE.multiply, lent, repeat(scaled_rate))
    return map(_WIDE.scaleb, map(_WIDE.divide_int, scaled, repeat(_HOURS_PER_YEAR)), repeat(-places))


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
    *,
    with_changes: bool = True,
) -> HourPlan:
    """`plan_hour` on positions as tuples: the same plan, in the same order, with the same sums
    (without `changes` unless `with_changes`: the plan of an hour settled in ranges, which make
    their own)."""
    places = terms.places
    paid, lent_total = _interest(positions, last, places)
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
    changes = _changes(positions, paid, match.lent.get) if with_changes else []
    return HourPlan(tuple(changes), match, interest_total, insurance, borrower_paid, rounding, lent_total)


def _interest(
    positions: Sequence[PositionRow], last: LastMatch | None, places: int
) -> tuple[dict[int, Decimal], Decimal]:
    """Each lent position's interest for the hour that ends (by id), and the total lent."""
    if last is None or last.lender_rate <= 0:
        return {}, ZERO
    lent = [(pid, loan) for pid, _, _, loan, _, _, _ in positions if loan > ZERO]
    loans = [loan for _, loan in lent]
    paid = dict(zip([pid for pid, _ in lent], hour_interests(loans, last.lender_rate, places), strict=True))
    return paid, sum(loans, ZERO)


def _changes(
    positions: Sequence[PositionRow], paid: dict[int, Decimal], lent_of: Callable[[int, Decimal], Decimal]
) -> list[PositionChange]:
    """The positions whose row changes: interest compounded, the new hour's loan from `lent_of`."""
    get_paid = paid.get
    changes = []
    for pid, user_id, amt, old_loan, earnings, _, _ in positions:
        interest = get_paid(pid, ZERO)
        loan = lent_of(pid, ZERO)
        if interest == ZERO and loan == old_loan:
            continue
        lent = old_loan if pid in paid else ZERO
        # positional, in field order: id, user_id, lent_last_hour, interest, amt, earnings, loan
        change = PositionChange(pid, user_id, lent, interest, amt + interest, earnings + interest, loan)
        changes.append(change)
    return changes


# --- settling an hour in ranges of positions ---------------------------------------------------


@dataclass(frozen=True)
class LendingRule:
    """What one position lends in the hour's match, decided from its own offer alone, so that a
    range of positions settles without reading the others (`plan_range_rows`).

    Auction: offers ordered before the *cut* — the last accepted offer, by (rate, seq) — lend in
    full, the cut offer lends `cut_take` (possibly part of it), later ones nothing. Pro rata: offers
    at or below `borrow_rate` lend `min(1, demand / eligible)` of themselves, rounded down. Either
    way nothing is lent when `demand` is 0. The rule reproduces the match it was taken from
    exactly (`tests/unit/test_range_settlement.py` holds it to that).
    """

    mode: MatchingMode
    demand: Decimal  # rounded to the currency's places; 0: nothing lent
    cut_rate: Decimal = ZERO
    cut_seq: int = 0
    cut_take: Decimal = ZERO
    borrow_rate: Decimal = ZERO
    eligible: Decimal = ZERO

    @classmethod
    def of(
        cls, plan: HourPlan, positions: Sequence[PositionRow], terms: MarketTerms, demand: Decimal
    ) -> LendingRule:
        """The rule of `plan`'s match, made on `positions` against `demand`."""
        match = plan.match
        if not match.lent:
            return cls(terms.mode, ZERO)
        if terms.mode is MatchingMode.AUCTION:
            order = {row.id: (row.rate, row.rate_seq) for row in positions if row.id in match.lent}
            cut_id = max(order, key=order.__getitem__)
            rate, seq = order[cut_id]
            return cls(terms.mode, match.lent_total, rate, seq, match.lent[cut_id])
        rounded = round_down(demand, terms.places)
        return cls(terms.mode, rounded, borrow_rate=match.borrow_rate, eligible=match.eligible)

    def lent(self, amount: Decimal, rate: Decimal, seq: int, places: int) -> Decimal:
        if amount <= ZERO or self.demand <= ZERO:
            return ZERO
        if self.mode is MatchingMode.AUCTION:
            key, cut = (rate, seq), (self.cut_rate, self.cut_seq)
            return amount if key < cut else self.cut_take if key == cut else ZERO
        if rate > self.borrow_rate:
            return ZERO
        return (
            amount
            if self.demand >= self.eligible
            else mul_div_down(amount, self.demand, self.eligible, places)
        )

    def to_json(self) -> dict[str, str | int]:
        return {
            "mode": self.mode.value,
            "demand": str(self.demand),
            "cut_rate": str(self.cut_rate),
            "cut_seq": self.cut_seq,
            "cut_take": str(self.cut_take),
            "borrow_rate": str(self.borrow_rate),
            "eligible": str(self.eligible),
        }

    @classmethod
    def from_json(cls, raw: dict[str, str | int]) -> LendingRule:
        return cls(
            MatchingMode(str(raw["mode"])),
            Decimal(str(raw["demand"])),
            Decimal(str(raw["cut_rate"])),
            int(raw["cut_seq"]),
            Decimal(str(raw["cut_take"])),
            Decimal(str(raw["borrow_rate"])),
            Decimal(str(raw["eligible"])),
        )


@dataclass(frozen=True)
class RangePlan:
    changes: tuple[PositionChange, ...]
    interest_total: Decimal
    lent_total: Decimal  # what the range's positions lend in the new hour


def plan_range_rows(
    positions: Sequence[PositionRow], last: LastMatch | None, places: int, rule: LendingRule
) -> RangePlan:
    """The part of the hour's plan that falls on `positions` (a range of them), given the match's
    rule: the same changes `plan_hour_rows` makes for those positions."""
    paid, _ = _interest(positions, last, places)
    get_paid = paid.get
    lent = {
        pid: take
        for pid, _, amt, _, _, rate, seq in positions
        if (take := rule.lent(amt + get_paid(pid, ZERO), rate, seq, places)) > ZERO
    }
    changes = _changes(positions, paid, lent.get)
    return RangePlan(tuple(changes), sum(paid.values(), ZERO), sum(lent.values(), ZERO))


@dataclass(frozen=True)
class HourFigures:
    """An hour's `market_hour` figures."""

    demand: Decimal
    borrow_rate: Decimal
    lender_rate: Decimal
    pool_rate: Decimal
    supply: Decimal
    lent: Decimal
    interest_paid: Decimal
    insurance_fee: Decimal
    borrower_paid: Decimal
    rounding: Decimal

    @classmethod
    def of(cls, plan: HourPlan, demand: Decimal) -> HourFigures:
        match = plan.match
        return cls(
            demand,
            match.borrow_rate,
            match.lender_rate,
            match.pool_rate,
            match.supply,
            match.lent_total,
            plan.interest_total,
            plan.insurance_fee,
            plan.borrower_paid,
            plan.rounding,
        )

    def columns(self) -> dict[str, Decimal]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class OpenHour:
    """What an hour keeps while it is open (`settlement_open.plan`): all a range of positions needs
    to settle without the others, and the figures the ranges must add up to."""

    places: int
    last: LastMatch | None
    rule: LendingRule
    figures: HourFigures
    demand_state: str

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "places": self.places,
            "last": None if last is None else [str(last.borrow_rate), str(last.lender_rate)],
            "rule": self.rule.to_json(),
            "figures": {name: str(value) for name, value in self.figures.columns().items()},
            "demand_state": self.demand_state,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OpenHour:
        last = raw["last"]
        return cls(
            int(raw["places"]),
            None if last is None else LastMatch(Decimal(last[0]), Decimal(last[1])),
            LendingRule.from_json(raw["rule"]),
            HourFigures(**{name: Decimal(value) for name, value in raw["figures"].items()}),
            str(raw["demand_state"]),
        )


def range_entry(ccy: str, ref: str, interest: Decimal) -> Entry | None:
    """A range's share of an hour: borrowers → the savings control account (its positions' interest)."""
    if interest == 0:
        return None
    savings = AccountRef.system(AccountKind.SAVINGS, ccy)
    return compound(
        "interest",
        ccy,
        (Leg(AccountRef.system(AccountKind.BORROWERS, ccy), -interest), Leg(savings, interest)),
        ref,
    )
