"""Hourly matching (SPEC §2.3), as pure functions on offers."""

from __future__ import annotations

from decimal import Decimal

from flexearn.domain.market import Offer, match_auction, match_pro_rata
from flexearn.domain.money import D

FEE = D("0.15")


def offers(*specs: tuple[int, str, str]) -> list[Offer]:
    """(amount, rate, …) in the order the rates were set."""
    return [Offer(i, D(amount), D(rate), seq=i) for i, (amount, rate, *_) in enumerate(specs)]


def test_auction_fills_cheapest_first_and_the_marginal_offer_in_part() -> None:
    match = match_auction(offers((100, "0.02", ""), (100, "0.05", ""), (100, "0.10", "")), D(150), FEE, 16)
    assert match.lent == {0: D(100), 1: D(50)}
    assert match.borrow_rate == D("0.05")
    assert match.lender_rate == match.pool_rate == D("0.0425")
    assert match.supply == D(300)


def test_auction_ties_are_first_come_first_served() -> None:
    tied = [Offer(7, D(100), D("0.03"), seq=20), Offer(8, D(100), D("0.03"), seq=10)]
    match = match_auction(tied, D(150), FEE, 16)
    assert match.lent == {8: D(100), 7: D(50)}


def test_auction_with_supply_below_demand_lends_everything_at_the_highest_rate() -> None:
    match = match_auction(offers((10, "0.02", ""), (20, "0.30", "")), D(1000), FEE, 16)
    assert match.lent == {0: D(10), 1: D(20)}
    assert match.borrow_rate == D("0.30")


def test_auction_with_zero_demand_or_no_supply_lends_nothing_at_rate_zero() -> None:
    for match in (match_auction(offers((10, "0.02", "")), D(0), FEE, 16), match_auction([], D(10), FEE, 16)):
        assert match.lent == {}
        assert (match.borrow_rate, match.lender_rate, match.pool_rate) == (0, 0, 0)


def test_auction_demand_is_rounded_down_to_the_precision() -> None:
    match = match_auction(offers((10, "0.02", "")), D("1.239"), FEE, 2)
    assert match.lent == {0: D("1.23")}


def test_empty_positions_do_not_set_the_rate() -> None:
    match = match_auction(offers((0, "0.50", ""), (10, "0.02", "")), D(5), FEE, 8)
    assert match.lent == {1: D(5)}
    assert match.borrow_rate == D("0.02")


def test_pro_rata_lends_each_eligible_offer_the_same_share_rounded_down() -> None:
    match = match_pro_rata(
        offers((100, "0.02", ""), (200, "0.05", ""), (50, "0.09", "")), D(100), D("0.05"), FEE, 6
    )
    third = D("33.333333")
    assert match.lent == {0: third, 1: D("66.666666")}
    assert match.eligible == D(300)
    assert match.lender_rate == D("0.0425")
    assert match.pool_rate == D("0.0425") * D(100) / D(300)
    assert sum(match.lent.values()) <= D(100)


def test_pro_rata_with_enough_demand_lends_every_eligible_offer_in_full() -> None:
    match = match_pro_rata(offers((100, "0.02", ""), (200, "0.06", "")), D(500), D("0.05"), FEE, 6)
    assert match.lent == {0: D(100)}
    assert match.pool_rate == match.lender_rate == D("0.0425")


def test_pro_rata_with_zero_demand_lends_nothing_and_both_rates_are_zero() -> None:
    match = match_pro_rata(offers((100, "0.02", "")), D(0), D("0.05"), FEE, 6)
    assert match.lent == {}
    assert (match.borrow_rate, match.pool_rate) == (Decimal(0), Decimal(0))
