"""Hourly settlement on a real database (SQLite and PostgreSQL): SPEC §2 worked examples."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import AmountTooLarge, InsufficientBalance, InvalidParameter
from flexearn.domain.money import D
from flexearn.services import accounts, markets, savings, scheduler, settlement
from tests.helpers import T0, advance, assert_ledger_ok, lender, market_world, position, start_clock


def test_worked_example_auction_pays_exact_interest_at_the_next_hour(app: Flexearn) -> None:
    market_world(app, demand=D(150))
    a = lender(app, "A", "USDT", D(100), D("0.02"))
    b = lender(app, "B", "USDT", D(100), D("0.05"))
    c = lender(app, "C", "USDT", D(100), D("0.10"))

    (first,) = advance(app)
    assert first.hour == T0 + HOUR_MS
    assert first.borrow_rate == D("0.05")
    assert first.lending_rate == D("0.0425")
    assert (position(app, a).loan, position(app, b).loan, position(app, c).loan) == (D(100), D(50), D(0))
    assert position(app, b).pending == D(50)

    advance(app)
    assert position(app, a).earnings == D("0.0004851598173515")
    assert position(app, b).earnings == D("0.0002425799086757")
    assert position(app, c).earnings == D(0)
    assert position(app, a).amt == D("100.0004851598173515")
    assert_ledger_ok(app)


def test_hour_is_booked_borrowers_pay_lenders_fund_and_rounding(app: Flexearn) -> None:
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    lender(app, "B", "USDT", D(100), D("0.05"))
    advance(app, 2)
    with app.engine.connect() as conn:
        hour = conn.execute(sa.select(t.market_hour).where(t.market_hour.c.hour == T0 + 2 * HOUR_MS)).one()
    assert hour.interest_paid == D("0.0007277397260272")
    # 150 × 5% / 8760 = 0.000856164383561643… rounded up; the fund takes 15% of it, rounded down.
    assert hour.borrower_paid == D("0.0008561643835617")
    assert hour.insurance_fee == D("0.0001284246575342")
    assert (
        hour.rounding
        == hour.borrower_paid - hour.interest_paid - hour.insurance_fee
        == D("0.0000000000000003")
    )
    assert_ledger_ok(app)


def test_zero_demand_lends_nothing_and_both_rates_are_zero(app: Flexearn) -> None:
    market_world(app, demand=D(0))
    a = lender(app, "A", "USDT", D(100), D("0.02"))
    (hour,) = advance(app)
    assert (hour.borrow_rate, hour.lending_rate, hour.lent) == (0, 0, 0)
    advance(app)
    assert position(app, a).earnings == 0
    assert position(app, a).pending == D(100)


def test_purchase_during_the_hour_is_pending_and_earns_from_the_next_match(app: Flexearn) -> None:
    market_world(app, demand=D(1000))
    a = lender(app, "A", "USDT", D(100), D("0.05"))
    advance(app)
    accounts.deposit(app.uow(), a, "USDT", D(50))
    savings.purchase(app.uow(), a, "USDT", D(50))
    assert (position(app, a).loan, position(app, a).pending) == (D(100), D(50))
    advance(app)
    # interest only on the 100 lent for the hour; then the whole 150 (plus interest) is matched
    interest = D("0.0004851598173515")
    assert position(app, a).earnings == interest
    assert position(app, a).loan == D(150) + interest


def test_redeemed_amount_earns_nothing_for_the_current_hour(app: Flexearn) -> None:
    market_world(app, demand=D(60))
    a = lender(app, "A", "USDT", D(100), D("0.05"))
    advance(app)
    assert (position(app, a).loan, position(app, a).pending) == (D(60), D(40))
    # 40 comes out of pending, 10 out of the lent part
    after = savings.redeem(app.uow(), a, "USDT", D(50))
    assert (after.amt, after.loan, after.pending) == (D(50), D(50), D(0))
    advance(app)
    # 50 × 4.25% / 8760 = 0.000242579908675799… rounded down: the redeemed 10 earned nothing
    assert position(app, a).earnings == D("0.0002425799086757")
    assert accounts.funding_balances(app.uow(), a)[0].available == D(50)
    assert_ledger_ok(app)


def test_interest_compounds_hour_after_hour(app: Flexearn) -> None:
    market_world(app, precision=8, demand=D(1_000_000))
    a = lender(app, "A", "USDT", D(10000), D("0.10"))
    advance(app)
    expected = D(10000)
    for _ in range(5):
        advance(app)
        # lent in full each hour, so each hour pays on the compounded amount
        expected += (expected * D("0.085") / 8760).quantize(D("1e-8"), rounding="ROUND_DOWN")
    assert position(app, a).amt == expected
    assert position(app, a).earnings == expected - 10000
    assert_ledger_ok(app)


def test_pro_rata_lends_the_same_share_of_every_eligible_offer(app: Flexearn) -> None:
    market_world(app, mode="pro_rata", demand=D(150), borrow_rate=D("0.08"))
    a = lender(app, "A", "USDT", D(100), D("0.02"))
    b = lender(app, "B", "USDT", D(200), D("0.08"))
    c = lender(app, "C", "USDT", D(100), D("0.10"))  # above r_b: not eligible
    (hour,) = advance(app)
    assert (position(app, a).loan, position(app, b).loan, position(app, c).loan) == (D(50), D(100), D(0))
    assert hour.borrow_rate == D("0.08")
    # a pro-rata pool takes no insurance cut unless the operator sets one (OKX's pool example)
    assert hour.lending_rate == D("0.08") * D(150) / D(300)
    advance(app)
    assert position(app, a).earnings == (D(50) * D("0.08") / 8760).quantize(
        D("1e-16"), rounding="ROUND_DOWN"
    )
    assert_ledger_ok(app)


def test_catch_up_settles_every_missed_hour_in_order_once(app: Flexearn) -> None:
    market_world(app, demand=D(100))
    lender(app, "A", "USDT", D(100), D("0.05"))
    settled = advance(app, 5.5)
    assert [s.hour for s in settled] == [T0 + n * HOUR_MS for n in range(1, 6)]
    assert scheduler.settle_due_hours(app.engine) == []
    assert settlement.settle_hour(app.uow(), "USDT", T0 + 3 * HOUR_MS) is None
    with pytest.raises(settlement.OutOfOrder):
        settlement.settle_hour(app.uow(), "USDT", T0 + 9 * HOUR_MS)
    assert_ledger_ok(app)


def test_the_database_refuses_a_second_settlement_of_an_hour(app: Flexearn) -> None:
    market_world(app, demand=D(100))
    advance(app)
    with app.engine.connect() as conn:
        row = conn.execute(sa.select(t.market_hour)).one()._asdict()
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.insert(t.market_hour).values(**row))


def test_refusals_write_nothing(app: Flexearn) -> None:
    market_world(app, precision=6, demand=D(100))
    a = lender(app, "A", "USDT", D(100), D("0.05"))
    with pytest.raises(InsufficientBalance):
        savings.purchase(app.uow(), a, "USDT", D(1))
    with pytest.raises(AmountTooLarge, match="less than 100"):
        savings.redeem(app.uow(), a, "USDT", D("100.000001"))
    with pytest.raises(InvalidParameter, match="decimal places"):
        accounts.deposit(app.uow(), a, "USDT", D("1.0000001"))
    for bad_rate in (D("0.0099"), D("3.6501")):
        with pytest.raises(InvalidParameter, match="rate"):
            savings.set_rate(app.uow(), a, "USDT", bad_rate)
    with pytest.raises(InsufficientBalance):
        accounts.withdraw(app.uow(), a, "USDT", D(1))
    assert position(app, a).amt == D(100)
    assert position(app, a).rate == D("0.05")
    assert_ledger_ok(app)


def test_rate_bounds_are_inclusive_and_a_purchase_without_rate_keeps_it(app: Flexearn) -> None:
    market_world(app)
    a = lender(app, "A", "USDT", D(10))
    assert position(app, a).rate == D("0.01")
    savings.set_rate(app.uow(), a, "USDT", D("3.65"))
    accounts.deposit(app.uow(), a, "USDT", D(5))
    savings.purchase(app.uow(), a, "USDT", D(5))
    assert position(app, a).rate == D("3.65")


def test_market_settings_change_and_are_validated(app: Flexearn) -> None:
    market_world(app)
    changed = markets.set_market(app.uow(), "USDT", mode="pro_rata", insurance_fee=D("0.2"), demand=D(5))
    assert (changed.mode.value, changed.insurance_fee, changed.demand) == ("pro_rata", D("0.2"), D(5))
    with pytest.raises(InvalidParameter, match="mode"):
        markets.set_market(app.uow(), "USDT", mode="fifo")
    with pytest.raises(InvalidParameter, match="insurance_fee"):
        markets.set_market(app.uow(), "USDT", insurance_fee=D(1))


def test_currencies_settle_side_by_side_and_one_failing_leaves_the_others_settled(app: Flexearn) -> None:
    """`settle_due` in three threads (PostgreSQL; SQLite takes turns): BTC's hour is asked for out
    of order and fails; USDT's and ETH's are settled all the same, then BTC's failure is raised
    (and its hour stays due)."""
    market_world(app, demand=D(150))
    for ccy in ("BTC", "ETH"):
        accounts.add_currency(app.uow(), ccy, 8)
        markets.set_market(app.uow(), ccy, mode="auction", demand=D(5))
    for ccy in ("USDT", "BTC", "ETH"):
        lender(app, f"lender-{ccy}", ccy, D(10), D("0.02"))
    first = T0 + HOUR_MS
    seen: list[tuple[int, ...]] = []
    due = {"ETH": [first], "BTC": [first + HOUR_MS], "USDT": [first]}
    with pytest.raises(settlement.OutOfOrder, match="BTC"):
        settlement.settle_due(
            app.engine, settlement.HOURS, due, threads=3, progress=lambda *told: seen.append(told)
        )
    assert seen == [(1, 3), (2, 3), (3, 3)]  # every key of the period was tried
    with app.engine.connect() as conn:
        settled = conn.execute(sa.select(t.market_hour.c.ccy, t.market_hour.c.hour)).all()
    assert sorted(settled) == [("ETH", first), ("USDT", first)]
    start_clock(app, first + 1)
    assert [(h.ccy, h.hour) for h in scheduler.settle_due_hours(app.engine, threads=3)] == [("BTC", first)]
    assert_ledger_ok(app)


def test_a_settler_told_to_stop_settles_no_further_period(app: Flexearn) -> None:
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    first = T0 + HOUR_MS
    answers = iter([True, False])  # asked before each period's transaction
    due = {"USDT": [first, first + HOUR_MS]}
    settled = settlement.settle_due(app.engine, settlement.HOURS, due, threads=2, keep_going=answers.__next__)
    assert [h.hour for h in settled] == [first]
