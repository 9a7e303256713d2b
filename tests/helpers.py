"""Small builders shared by the tests: a world with a simulated clock standing still."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import clock
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, ledger_check, markets, savings, scheduler, settlement

# 2026-01-01T00:00:00Z: tests start their business clock here, on the hour.
T0 = 1_767_225_600_000


@contextmanager
def with_todays_tables(engine: sa.Engine) -> Iterator[None]:
    """Today's code on a database migrated to an older revision (to fill it before testing a later
    migration): the tables added since (range settlement's, the replay window, auto-subscribe's...)
    exist while the block runs, as today's metadata declares them, and are dropped after it, before
    the upgrade creates them its own way."""
    present = set(sa.inspect(engine).get_table_names())
    missing = [table for table in t.metadata.sorted_tables if table.name not in present]
    t.metadata.create_all(engine, tables=missing)
    try:
        yield
    finally:
        t.metadata.drop_all(engine, tables=missing)


@contextmanager
def with_catalog_schema_of_today(engine: sa.Engine) -> Iterator[None]:
    """`with_todays_tables`, and the products' `apr_source` and `apr_walk` columns (0014), which
    today's code reads with every product."""
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE earn_product ADD COLUMN apr_source VARCHAR(16)"))
        conn.execute(sa.text("ALTER TABLE earn_product ADD COLUMN apr_walk TEXT"))
    try:
        with with_todays_tables(engine):
            yield
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE earn_product DROP COLUMN apr_walk"))
            conn.execute(sa.text("ALTER TABLE earn_product DROP COLUMN apr_source"))


def start_clock(app: Flexearn, at: int = T0) -> None:
    """A simulated clock standing still at `at` (advance it with `advance`)."""
    with app.uow() as uow:
        clock.set_simulated(uow.conn, D(0), at)
        uow.commit()


def advance(app: Flexearn, hours: float = 1) -> list[settlement.SettledHour]:
    """Move the clock forward and settle what became due."""
    with app.uow() as uow:
        clock.advance(uow.conn, int(hours * HOUR_MS))
        uow.commit()
    return scheduler.settle_due_hours(app.engine)


def market_world(
    app: Flexearn,
    ccy: str = "USDT",
    *,
    precision: int = 16,
    mode: str = "auction",
    demand: Decimal = D(0),
    borrow_rate: Decimal = D(0),
) -> None:
    """A currency with a static-demand market whose first hour is T0 + 1h."""
    start_clock(app, T0 + 1)  # a moment after T0, so the first hour settled is T0 + 1h
    accounts.add_currency(app.uow(), ccy, precision)
    markets.set_market(app.uow(), ccy, mode=mode, demand=demand, borrow_rate=borrow_rate)


def saver(app: Flexearn, held: Decimal, name: str = "reader") -> int:
    """A user with `held` USDT in savings and the rest of 100 in funding, on `market_world`'s
    USDT market (made here): for the tests of the reads and their replay claims."""
    market_world(app, "USDT", demand=D(0))
    user = accounts.create_user(app.uow(), name)
    accounts.deposit(app.uow(), user, "USDT", D(100))
    savings.purchase(app.uow(), user, "USDT", held, None)
    return user


def lender(
    app: Flexearn,
    name: str,
    ccy: str,
    amount: Decimal,
    rate: Decimal | None = None,
    deposit: Decimal | None = None,
) -> int:
    """A user who deposits and buys `amount` of savings (at `rate`, if given)."""
    user_id = accounts.create_user(app.uow(), name)
    accounts.deposit(app.uow(), user_id, ccy, deposit if deposit is not None else amount)
    savings.purchase(app.uow(), user_id, ccy, amount, rate)
    return user_id


def position(app: Flexearn, user_id: int, ccy: str = "USDT") -> savings.Position:
    (found,) = savings.positions(app.uow(), user_id, ccy)
    return found


def assert_ledger_ok(app: Flexearn) -> None:
    assert ledger_check.check(app.uow()) == []


@contextmanager
def writing_in_a_slot(app: Flexearn) -> Iterator[threading.Event]:
    """A thread of this process in a unit of work holding SQLite's write lock (as a database slot's
    would) until the event yielded is set."""
    entered, leave = threading.Event(), threading.Event()

    def write() -> None:
        with app.uow() as uow:
            uow.conn.execute(sa.text("SELECT 1"))
            entered.set()
            leave.wait(10)
            uow.commit()

    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(write)
        assert entered.wait(10)
        try:
            yield leave
        finally:
            leave.set()
        writing.result()
