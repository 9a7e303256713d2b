"""The market product: hourly matching of lenders' offers against borrow demand (SPEC §2).

Rates are annual decimal fractions (`0.05` is 5%). Amounts are rounded down to the currency
precision; nothing here rounds up a user's favour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from operator import itemgetter

from flexearn.domain.errors import InvalidParameter
from flexearn.domain.money import ZERO, D, mul_div_down, round_down

MIN_RATE = D("0.01")
MAX_RATE = D("3.65")
DEFAULT_INSURANCE_FEE = D("0.15")


class MatchingMode(StrEnum):
    AUCTION = "auction"
    PRO_RATA = "pro_rata"


def default_insurance_fee(mode: MatchingMode) -> Decimal:
    """The share of borrower interest kept by the insurance fund when the operator names none.

    Auction markets: 15 %, OKX's long-standing cut. Pro-rata (stablecoin) pools: none — OKX's
    13 Nov 2025 announcement of the pool model gives a 5 % borrow rate with 1,000 borrowed of
    1,250 eligible as a 4 % lending rate (5 % × 1,000 / 1,250), with no cut taken.
    """
    return ZERO if mode is MatchingMode.PRO_RATA else DEFAULT_INSURANCE_FEE


class DemandSource(StrEnum):
    STATIC = "static"
    SIMULATED = "simulated"
    EXTERNAL = "external"  # the operator's margin engine posts each hour's demand (admin API)


def check_rate(rate: Decimal, param: str = "rate") -> Decimal:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidParameter(param, f"the minimum lending rate must be between {MIN_RATE} and {MAX_RATE}")
    return rate


def check_insurance_fee(fee: Decimal) -> Decimal:
    if not ZERO <= fee < 1:
        raise InvalidParameter("insurance_fee", "must be at least 0 and below 1")
    return fee


@dataclass(frozen=True)
class Offer:
    """A position's whole `amt` offered at its user's minimum rate; `seq` orders equal rates."""

    position_id: int
    amount: Decimal
    rate: Decimal
    seq: int


@dataclass(frozen=True)
class Match:
    """The outcome of one hour's match."""

    borrow_rate: Decimal  # r* (auction) or r_b (pro rata); 0 when nothing is lent
    lender_rate: Decimal  # annual rate paid on each lent amount: borrow_rate × (1 − fee)
    pool_rate: Decimal  # annual rate an eligible offer earns on its whole amount (wire lendingRate)
    lent: dict[int, Decimal]  # position id → amount lent for the hour (only non-zero)
    supply: Decimal  # total offered
    eligible: Decimal  # offered at or below the borrow rate

    @cached_property  # read twice per settled hour, a sum over every lent position
    def lent_total(self) -> Decimal:
        return sum(self.lent.values(), ZERO)


# An offer as a plain tuple, in Offer's field order: position_id, amount, rate, seq. The matchers
# work on these; settlement builds them directly, saving an object per position.
OfferRow = tuple[int, Decimal, Decimal, int]
_BY_RATE = itemgetter(2)
_BY_SEQ = itemgetter(3)


def _rows(offers: Sequence[Offer]) -> list[OfferRow]:
    return [(o.position_id, o.amount, o.rate, o.seq) for o in offers]


def _no_match(supply: Decimal, borrow_rate: Decimal = ZERO, eligible: Decimal = ZERO) -> Match:
    return Match(borrow_rate, ZERO, ZERO, {}, supply, eligible)


def match_auction(
    offers: Sequence[Offer], demand: Decimal, insurance_fee: Decimal, places: int
) -> Match:
    """Cheapest offers first (ties: first set, first served) until demand is met.

    The highest accepted minimum rate is the borrow rate r*; every accepted offer lends at r*, the
    marginal one possibly in part. If supply is short of demand everything is lent.
    """
    return match_auction_rows(_rows(offers), demand, insurance_fee, places)


def match_auction_rows(
    offers: Sequence[OfferRow], demand: Decimal, insurance_fee: Decimal, places: int
) -> Match:
    """`match_auction` on offers as tuples."""
    # by (rate, seq): stable sorts by seq, then by rate, give the same order as one by the pair
    live = sorted(sorted([o for o in offers if o[1] > ZERO], key=_BY_SEQ), key=_BY_RATE)
    supply = sum([o[1] for o in live], ZERO)
    remaining = round_down(demand, places)
    if remaining <= ZERO or not live:
        return _no_match(supply)
    lent: dict[int, Decimal] = {}
    borrow_rate = ZERO
    for position_id, amount, rate, _ in live:
        if remaining <= ZERO:
            break
        take = remaining if remaining < amount else amount  # min(amount, remaining)
        lent[position_id] = take
        remaining -= take
        borrow_rate = rate
    lender_rate = borrow_rate * (1 - insurance_fee)
    eligible = sum([o[1] for o in live if o[2] <= borrow_rate], ZERO)
    return Match(borrow_rate, lender_rate, lender_rate, lent, supply, eligible)


def match_pro_rata(
    offers: Sequence[Offer],
    demand: Decimal,
    borrow_rate: Decimal,
    insurance_fee: Decimal,
    places: int,
) -> Match:
    """Every offer at or below r_b lends the same share `min(1, D / eligible)` of itself at r_b."""
    return match_pro_rata_rows(_rows(offers), demand, borrow_rate, insurance_fee, places)


def match_pro_rata_rows(
    offers: Sequence[OfferRow],
    demand: Decimal,
    borrow_rate: Decimal,
    insurance_fee: Decimal,
    places: int,
) -> Match:
    """`match_pro_rata` on offers as tuples."""
    live = [o for o in offers if o[1] > ZERO]
    supply = sum([o[1] for o in live], ZERO)
    eligible_offers = [o for o in live if o[2] <= borrow_rate]
    eligible = sum([o[1] for o in eligible_offers], ZERO)
    demand = round_down(demand, places)
    if demand <= 0 or borrow_rate <= 0:
        return _no_match(supply, eligible=eligible)
    if eligible == 0:
        return _no_match(supply, borrow_rate)
    lent: dict[int, Decimal] = {}
    for position_id, amount, _, _ in eligible_offers:
        take = amount if demand >= eligible else mul_div_down(amount, demand, eligible, places)
        if take > 0:
            lent[position_id] = take
    lender_rate = borrow_rate * (1 - insurance_fee)
    share = min(Decimal(1), demand / eligible)
    return Match(borrow_rate, lender_rate, lender_rate * share, lent, supply, eligible)


# --- the next match's rate, from the supply curve alone ------------------------------------------


def auction_rate(supply: Sequence[tuple[Decimal, Decimal]], demand: Decimal, places: int) -> Decimal:
    """The borrow rate `match_auction` would set, from the supply curve: (minimum rate, amount
    offered at it) for each rate with something offered, cheapest first. Which offers of the
    marginal rate fill first (their `seq`) changes who lends, never the rate."""
    remaining = round_down(demand, places)
    rate = ZERO
    if remaining <= ZERO:
        return rate
    for rate, amount in supply:  # noqa: B007 - the rate the loop stops at is the answer
        remaining -= amount
        if remaining <= ZERO:
            break
    return rate


def pro_rata_rate(demand: Decimal, borrow_rate: Decimal, places: int) -> Decimal:
    """The borrow rate `match_pro_rata` would set: r_b, whatever is offered, unless nothing is
    borrowed."""
    return borrow_rate if round_down(demand, places) > ZERO and borrow_rate > ZERO else ZERO
