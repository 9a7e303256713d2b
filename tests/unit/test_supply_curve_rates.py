"""The next match's rate from the supply curve alone equals the full match's, for any market.

`lending-rate-summary`'s `estRate` and the dashboard are served from each currency's supply curve
(kept in memory between changes) instead of matching every position on each request; these
properties hold the shortcut to the matchers settlement uses.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from flexearn.domain.market import Offer, auction_rate, match_auction, match_pro_rata, pro_rata_rate
from flexearn.domain.money import ZERO, D

FEE = D("0.15")
PLACES = 4

amounts = st.integers(0, 10**7).map(lambda n: Decimal(n).scaleb(-PLACES))
rates = st.integers(1, 40).map(lambda n: Decimal(n).scaleb(-2))  # few distinct rates: many ties
demands = st.integers(-10, 10**8).map(lambda n: Decimal(n).scaleb(-PLACES - 2))  # finer than the currency
offer_lists = st.lists(st.tuples(amounts, rates), max_size=40).map(
    lambda specs: [Offer(i, amount, rate, seq=(i * 7919) % 101) for i, (amount, rate) in enumerate(specs)]
)


def supply_curve(offers: list[Offer]) -> list[tuple[Decimal, Decimal]]:
    by_rate: dict[Decimal, Decimal] = {}
    for offer in offers:
        if offer.amount > 0:
            by_rate[offer.rate] = by_rate.get(offer.rate, ZERO) + offer.amount
    return sorted(by_rate.items())


@given(offer_lists, demands)
def test_the_auction_rate_of_the_supply_curve_is_the_matchs(offers: list[Offer], demand: Decimal) -> None:
    expected = match_auction(offers, demand, FEE, PLACES).borrow_rate
    assert auction_rate(supply_curve(offers), demand, PLACES) == expected


@given(offer_lists, demands, rates | st.just(ZERO))
def test_the_pro_rata_rate_needs_no_offer(offers: list[Offer], demand: Decimal, borrow_rate: Decimal) -> None:
    expected = match_pro_rata(offers, demand, borrow_rate, FEE, PLACES).borrow_rate
    assert pro_rata_rate(demand, borrow_rate, PLACES) == expected


def test_the_worked_example_of_docs_engine_clears_at_five_percent() -> None:
    curve = [(D("0.02"), D(100)), (D("0.05"), D(100)), (D("0.10"), D(100))]
    assert auction_rate(curve, D(150), 16) == D("0.05")
    assert auction_rate(curve, D(1000), 16) == D("0.10")  # short of demand: the highest offer
    assert auction_rate(curve, D(0), 16) == auction_rate([], D(10), 16) == ZERO
