"""Settling periods by user-id range gives what settling each in one transaction gives.

Two databases of the same kind run the same two days of trading (two markets — auction and
pro rata — and a flexible and a fixed catalog product, many users, trades every hour); one settles
each period in one transaction, the other in ranges. Every position, lending-history row, hour,
holding, order, product-day and account balance must come out the same, and the ledger check green
on both. Then: a settler that dies with an hour half applied is finished by the next one; trading
waits while an hour is open; a trade whose budget runs out meanwhile writes nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from flexearn.adapters import clock, db
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS, day_start
from flexearn.domain.money import D
from flexearn.services import (
    accounts,
    catalog,
    catalog_trading,
    gate,
    ledger_check,
    markets,
    savings,
    scheduler,
    settlement,
    stats,
)
from tests.conftest import _database
from tests.helpers import assert_ledger_ok
from tests.integration.settlement_world import LADDER, seed, snapshot, trade


@pytest.fixture
def twin(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flexearn]:
    """A second, empty database of the same kind as `app`'s."""
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    for url in _database(kind, tmp_path_factory):
        instance = Flexearn(url)
        yield instance
        instance.close()


def run(app: Flexearn, ranges: int, hours: int = 48, *, threads: int = 1, btc_product: bool = False) -> None:
    """The seeded world (`btc_product`: and a flexible BTC product half the users hold), `hours`
    hours of trading, each settled with `ranges` and `threads`."""
    users, _ = seed(app)
    if btc_product:
        spec = {"coin": "BTC", "apyType": "ladder", "apyList": LADDER, "periodType": "flexible"}
        btc = catalog.create_product(app.uow(), product_spec.parse(spec)).id
        for user in users[::2]:
            catalog_trading.subscribe(app.uow(), user, btc, "flexible", D("0.5"))
    rng = random.Random(11)
    for _ in range(hours):
        trade(app, users, rng)
        with app.uow() as uow:
            clock.advance(uow.conn, HOUR_MS)
            uow.commit()
        scheduler.settle_all_due(app.engine, ranges=ranges, threads=threads)


def test_two_days_settled_in_ranges_equal_them_settled_in_one_transaction_each(
    app: Flexearn, twin: Flexearn
) -> None:
    run(app, ranges=1)
    run(twin, ranges=5)
    one, ranged = snapshot(app, ranged=True), snapshot(twin, ranged=True)
    assert len(one["hours"]) == 2 * 48  # 2 markets × 48 hours
    assert len(one["days"]) == 2 * 2  # 2 products × 2 days
    assert sum(Decimal(r[3]) for r in one["days"]) > 0  # the products paid interest
    assert len(one["history"]) > 100  # and lenders earned
    for part in one:
        assert ranged[part] == one[part], part
    assert_ledger_ok(app)
    assert_ledger_ok(twin)
    with twin.engine.connect() as conn:  # the hours' interest came in one entry per range
        refs = conn.execute(
            sa.select(t.journal_entry.c.ref).where(t.journal_entry.c.ref.like("hour:%:range:%"))
        )
        assert len(set(refs.scalars())) > 30
        assert conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar() == 0


def _open_hour_with_lenders(app: Flexearn) -> tuple[list[int], int]:
    users, _ = seed(app)
    rng = random.Random(3)
    for _ in range(3):
        trade(app, users, rng)
        with app.uow() as uow:
            clock.advance(uow.conn, HOUR_MS)
            uow.commit()
        scheduler.settle_all_due(app.engine, ranges=4)
    with app.uow() as uow:
        clock.advance(uow.conn, HOUR_MS)
        hour = clock.floor_hour(uow.now())
        uow.commit()
    assert settlement.open_period(app.uow(), settlement.HOURS, "USDT", hour, 4)
    return users, hour


def test_a_settler_dying_with_the_hour_half_applied_is_finished_by_the_next(
    app: Flexearn, twin: Flexearn
) -> None:
    _, hour = _open_hour_with_lenders(app)
    assert settlement.apply_next(app.engine, settlement.HOURS, "USDT", hour, worker="first")
    assert settlement.apply_next(app.engine, settlement.HOURS, "USDT", hour, worker="first")
    opened = stats.snapshot(app.uow()).open_since  # what /metrics shows an operator
    assert opened is not None
    assert abs(opened - clock.wall_ms()) < 60_000
    # ... and it dies. The ledger holds meanwhile: each applied range is whole; but no checkpoint
    # is written in the middle of an hour (its figures would count the applied ranges twice).
    assert_ledger_ok(app)
    report = ledger_check.run(app.engine, checkpoint=True)
    assert (report.violations, report.checkpoint) == ([], None)
    with app.engine.connect() as conn:
        r = t.settlement_range
        applied = conn.execute(sa.select(r.c.range_no).where(r.c.applied_at.is_not(None))).scalars().all()
        assert sorted(applied) == [0, 1]
    # a settler set to one transaction does not settle the open hour on its own (twice) ...
    assert settlement.settle_hour(app.uow(), "USDT", hour) is None
    # ... but finishes it in its ranges
    done = scheduler.settle_all_due(app.engine, ranges=1, worker="second")
    assert [(h.ccy, h.hour) for h in done.hours if h.ccy == "USDT"] == [("USDT", hour)]
    assert settlement.close_period(app.uow(), settlement.HOURS, "USDT", hour) is None  # closed once only
    assert stats.snapshot(app.uow()).open_since is None
    assert ledger_check.run(app.engine, checkpoint=True).checkpoint is not None
    assert ledger_check.run(app.engine).violations == []  # from that checkpoint
    assert_ledger_ok(app)

    _open_hour_with_lenders(twin)  # the same trading, settled without interruption
    scheduler.settle_all_due(twin.engine, ranges=4)
    assert snapshot(app, ranged=True) == snapshot(twin, ranged=True)


def test_trading_waits_while_an_hour_is_open_and_is_applied_after_it(app: Flexearn) -> None:
    users, hour = _open_hour_with_lenders(app)
    lender = users[0]
    before = sum((p.amt for p in savings.positions(app.uow(), lender, "USDT")), D(0))
    done: list[savings.Position] = []
    buyer = threading.Thread(target=lambda: done.append(savings.purchase(app.uow(), lender, "USDT", D(5))))
    buyer.start()
    time.sleep(0.3)
    assert buyer.is_alive()  # waiting for the hour to close
    assert not done
    assert settlement.settle(app.engine, settlement.HOURS, "USDT", hour, 4) is not None
    buyer.join(timeout=10)
    (after,) = done
    settled = next(p for p in savings.positions(app.uow(), lender, "USDT"))
    assert after.amt == settled.amt
    # the purchase came after the match: pending, on top of whatever the hour compounded
    assert after.amt - after.loan >= D(5)
    assert after.amt >= before + D(5)
    assert_ledger_ok(app)


def test_a_trade_whose_budget_runs_out_while_an_hour_is_open_writes_nothing(app: Flexearn) -> None:
    users, hour = _open_hour_with_lenders(app)
    lender = users[1]
    balance = accounts.funding_balances(app.uow(), lender)
    started = time.monotonic()
    with db.deadline(db.Deadline(time.monotonic() + 0.3)), pytest.raises(gate.PeriodOpen):
        savings.purchase(app.uow(), lender, "USDT", D(5))
    assert 0.2 < time.monotonic() - started < 2
    assert accounts.funding_balances(app.uow(), lender) == balance
    # and a demand post for the open hour is too late
    with db.deadline(db.Deadline(time.monotonic() + 0.1)), pytest.raises(gate.PeriodOpen):
        markets.post_demand(app.uow(), "USDT", hour, D(1))
    settlement.settle(app.engine, settlement.HOURS, "USDT", hour, 4)
    savings.purchase(app.uow(), lender, "USDT", D(5))  # the gate opens with the close


def test_catalog_subscriptions_wait_while_a_day_is_open(app: Flexearn) -> None:
    users, (flexible, _) = seed(app)
    with app.uow() as uow:
        clock.advance(uow.conn, DAY_MS)
        day = day_start(uow.now())  # the start of Bitget's day: 16:00 UTC
        uow.commit()
    assert settlement.open_period(app.uow(), settlement.DAYS, str(flexible), day, 3)
    with db.deadline(db.Deadline(time.monotonic() + 0.1)), pytest.raises(gate.PeriodOpen):
        catalog_trading.subscribe(app.uow(), users[1], flexible, "flexible", D(100))
    settled = settlement.settle(app.engine, settlement.DAYS, str(flexible), day, 3)
    assert settled is not None
    assert settled.day == day
    assert catalog_trading.subscribe(app.uow(), users[1], flexible, "flexible", D(100)).status == "success"
    assert_ledger_ok(app)


def test_user_ids_are_cut_into_ranges_that_cover_every_id() -> None:
    assert settlement.split([], 4) == [(None, None)]
    assert settlement.split([5, 9], 1) == [(None, None)]
    assert settlement.split(range(1, 101), 4) == [(None, 26), (26, 51), (51, 76), (76, None)]
    assert settlement.split([7], 3) == [(None, None)]  # one user: one range
    cuts = settlement.split([1, 2, 3], 8)  # more ranges than ids: no empty duplicates
    assert cuts == [(None, 2), (2, 3), (3, None)]


@pytest.mark.postgres
def test_workers_share_an_hours_ranges_each_applied_once(postgres_url: str) -> None:
    """Two workers apply an open hour's 16 ranges side by side (PostgreSQL: FOR UPDATE SKIP
    LOCKED); each range is applied by one of them, once; the close then settles the hour."""
    app = Flexearn(postgres_url)
    try:
        _, hour = _open_hour_with_lenders(app)
        with app.uow() as uow:  # reopen the hour in 16 ranges, for more ranges than users
            uow.conn.execute(sa.delete(t.settlement_range))
            uow.conn.execute(sa.delete(t.settlement_open))
            uow.commit()
        assert settlement.open_period(app.uow(), settlement.HOURS, "USDT", hour, 16)
        start = threading.Barrier(2)

        def paced() -> bool:  # a range at a time, so that neither worker takes them all
            time.sleep(0.01)
            return True

        def work(name: str) -> None:
            start.wait()
            settlement.help_open_periods(app.engine, worker=name, keep_going=paced)

        threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        r = t.settlement_range
        with app.engine.connect() as conn:
            rows = conn.execute(sa.select(r.c.range_no, r.c.applied_by, r.c.applied_at)).all()
        assert len(rows) == len({row.range_no for row in rows}) > 1
        assert all(row.applied_at is not None for row in rows)
        assert {row.applied_by for row in rows} == {"a", "b"}
        assert settlement.close_period(app.uow(), settlement.HOURS, "USDT", hour) is not None
        assert_ledger_ok(app)
    finally:
        app.close()


def test_currencies_and_coins_side_by_side_settle_as_one_at_a_time(app: Flexearn, twin: Flexearn) -> None:
    """The world of two markets and two USDT products, plus a BTC product: settled with three
    threads (on PostgreSQL: USDT's and BTC's hours at once, then the BTC product's day beside the
    USDT products', which take turns: one lane) it writes what one at a time writes."""
    run(app, ranges=1, btc_product=True)
    run(twin, ranges=1, threads=3, btc_product=True)
    one, side = snapshot(app), snapshot(twin)
    assert len(one["hours"]) == 2 * 48
    assert len(one["days"]) == 3 * 2  # 3 products × 2 days
    for part in one:
        assert side[part] == one[part], part
    assert_ledger_ok(twin)
