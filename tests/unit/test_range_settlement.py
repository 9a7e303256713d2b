"""An hour settled in ranges of positions makes exactly the changes of the hour settled at once.

Each range sees only its own positions and the match's `LendingRule`; the union of the ranges'
changes must be the whole plan's, position for position, and their interest the plan's total.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from flexearn.domain.market import MatchingMode
from flexearn.domain.money import D
from flexearn.domain.settlement import (
    LastMatch,
    LendingRule,
    MarketTerms,
    PositionRow,
    plan_hour_rows,
    plan_range_rows,
)

PLACES = 8
amounts = st.decimals(min_value=0, max_value=10_000, places=PLACES, allow_nan=False, allow_infinity=False)
rates = st.sampled_from([D("0.01"), D("0.02"), D("0.05"), D("0.1"), D("0.5")])


@st.composite
def hours(draw: st.DrawFn) -> tuple[list[PositionRow], LastMatch | None, MarketTerms, Decimal, Decimal]:
    count = draw(st.integers(min_value=0, max_value=40))
    seqs = draw(st.permutations(range(1, count + 1)))
    positions = []
    for i in range(count):
        amt = draw(amounts)
        loan = draw(st.sampled_from([D(0), amt, (amt / 3).quantize(D("1E-8"), rounding="ROUND_DOWN")]))
        positions.append(PositionRow(i + 1, draw(st.integers(1, 12)), amt, loan, D(0), draw(rates), seqs[i]))
    last = draw(
        st.none() | st.sampled_from([LastMatch(D("0.05"), D("0.0425")), LastMatch(D("0.1"), D("0.085"))])
    )
    mode = draw(st.sampled_from(list(MatchingMode)))
    demand = draw(amounts) * draw(st.sampled_from([D(1), D(5), D("0.1")]))
    borrow_rate = draw(st.sampled_from([D(0), D("0.02"), D("0.05"), D("0.2")]))
    return positions, last, MarketTerms(mode, D("0.15"), PLACES), demand, borrow_rate


@settings(max_examples=400, deadline=None)
@given(hours(), st.lists(st.integers(1, 12), max_size=4))
def test_ranges_make_the_whole_plans_changes(
    hour: tuple[list[PositionRow], LastMatch | None, MarketTerms, Decimal, Decimal], bounds: list[int]
) -> None:
    positions, last, terms, demand, borrow_rate = hour
    whole = plan_hour_rows(positions, last, terms, demand, borrow_rate)
    rule = LendingRule.from_json(LendingRule.of(whole, positions, terms, demand).to_json())
    edges = [None, *sorted(set(bounds)), None]
    changes, interest, lent = [], D(0), D(0)
    for lo, hi in itertools.pairwise(edges):
        part = [p for p in positions if (lo is None or p.user_id >= lo) and (hi is None or p.user_id < hi)]
        planned = plan_range_rows(part, last, terms.places, rule)
        changes += planned.changes
        interest += planned.interest_total
        lent += planned.lent_total
    assert sorted(changes, key=lambda c: c.id) == sorted(whole.changes, key=lambda c: c.id)
    assert interest == whole.interest_total
    assert lent == whole.match.lent_total


def test_the_auction_cut_lends_in_part_and_offers_after_it_nothing() -> None:
    positions = [
        PositionRow(1, 1, D(100), D(0), D(0), D("0.02"), 3),
        PositionRow(2, 2, D(100), D(0), D(0), D("0.02"), 5),  # same rate, set later: after 1
        PositionRow(3, 3, D(100), D(0), D(0), D("0.05"), 1),
    ]
    terms = MarketTerms(MatchingMode.AUCTION, D("0.15"), PLACES)
    whole = plan_hour_rows(positions, None, terms, D(150), D(0))
    rule = LendingRule.of(whole, positions, terms, D(150))
    assert (rule.cut_rate, rule.cut_seq, rule.cut_take) == (D("0.02"), 5, D(50))
    assert [plan_range_rows([p], None, PLACES, rule).lent_total for p in positions] == [D(100), D(50), D(0)]
