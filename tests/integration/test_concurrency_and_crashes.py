"""Concurrency and crash safety on real databases, with nothing mocked.

- Many threads hammer one user's funding account and savings position: every operation is
  serialised, the only refusals are the business ones, and not a unit of money is lost or made,
  also while settlement runs.
- Settlers racing for the same hours: each hour is settled exactly once, by one of them.
- Settlement interrupted part-way (the process SIGKILLed, the transaction failing inside the
  database, its connection terminated by the server): nothing of the interrupted hour is ever
  visible, and re-running settles every hour exactly once, to the same result as a run that was
  never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import operator
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from flexearn.adapters import clock
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, normalise_url
from flexearn.bootstrap import Flexearn
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.errors import AmountTooLarge, InsufficientBalance
from flexearn.domain.ledger import AccountKind, AccountRef
from flexearn.domain.money import D
from flexearn.services import accounts, markets, savings, scheduler, settlement
from flexearn.services.unit_of_work import UnitOfWork
from tests.helpers import T0, advance, assert_ledger_ok, lender, position, start_clock

FIRST_HOUR = T0 + HOUR_MS  # every world below starts its clock just after T0
THREAD_TIMEOUT = 120  # seconds; a thread still running after this is a deadlock or a hang
ZERO = D(0)

State = dict[str, list[tuple[Any, ...]]]


# --- shared tools ----------------------------------------------------------------------------------


def run_threads(targets: list[Callable[[], None]], timeout: float = THREAD_TIMEOUT) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert stuck == 0, f"{stuck} threads still running after {timeout}s: deadlock or hang"


def move_clock(app: Flexearn, hours: int) -> None:
    """Move the simulated clock forward without settling anything."""
    with app.uow() as uow:
        clock.advance(uow.conn, hours * HOUR_MS)
        uow.commit()


def hour_range(count: int) -> list[int]:
    return [FIRST_HOUR + n * HOUR_MS for n in range(count)]


def settled_hours(engine: sa.Engine) -> dict[str, list[int]]:
    hours: dict[str, list[int]] = {}
    with engine.connect() as conn:
        query = sa.select(t.market_hour.c.ccy, t.market_hour.c.hour).order_by("ccy", "hour")
        for ccy, hour in conn.execute(query):
            hours.setdefault(ccy, []).append(hour)
    return hours


def snapshot(engine: sa.Engine) -> State:
    """Everything settlement writes, each row led by its currency.

    Without ids and wall-clock stamps, which legitimately differ between two runs (PostgreSQL
    sequences do not roll back).
    """
    p, hours, history, entry = t.position.c, t.market_hour, t.lending_history.c, t.journal_entry.c
    leg, acc = t.journal_leg.c, t.account.c
    with engine.connect() as conn:

        def rows(*columns: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in conn.execute(sa.select(*columns)))

        leg_sums: Counter[tuple[str, str]] = Counter()
        for ccy, key, amount in conn.execute(
            sa.select(acc.ccy, acc.key, leg.amount).join(t.account, acc.id == leg.account_id)
        ):
            leg_sums[ccy, key] += amount
        return {
            "positions": rows(p.ccy, p.id, p.user_id, p.amt, p.loan, p.earnings, p.rate, p.rate_seq),
            "market hours": rows(*(c for c in hours.c if c.name not in ("created_at", "entry_id"))),
            "lending history": rows(history.ccy, history.position_id, history.ts, history.user_id,
                                    history.amt, history.earnings, history.rate),
            "journal entries": rows(entry.ccy, entry.kind, entry.ref, entry.ts),
            "account legs": sorted((*key, total) for key, total in leg_sums.items()),
            "user balances": [row for row in rows(acc.ccy, acc.key, acc.balance) if row[2] is not None],
        }


def only(state: State, ccy: str) -> State:
    return {name: [row for row in rows if row[0] == ccy] for name, rows in state.items()}


def assert_same_state(actual: State, expected: State) -> None:
    """Exact equality (amounts compare as Decimals), reporting the first difference only."""
    for name, rows in expected.items():
        got = actual[name]
        if got == rows:
            continue
        first = next((i for i, (a, b) in enumerate(zip(got, rows, strict=False)) if a != b),
                     min(len(got), len(rows)))
        pytest.fail(
            f"{name}: {len(got)} rows, {len(rows)} expected; first difference at row {first}: "
            f"{got[first] if first < len(got) else None} != {rows[first] if first < len(rows) else None}"
        )


def small_world(app: Flexearn, lenders: int = 12) -> None:
    """Two markets built through the services, the same on every database.

    BTC: auction on a static demand that some of the lenders meet; USDT: pro rata on simulated
    demand, whose state carries from hour to hour.
    """
    start_clock(app, T0 + 1)
    accounts.add_currency(app.uow(), "BTC", 8)
    accounts.add_currency(app.uow(), "USDT", 6)
    markets.set_market(app.uow(), "BTC", mode="auction", demand=D(30))
    mean, base_rate = D(50_000), D("0.06")
    markets.set_market(app.uow(), "USDT", mode="pro_rata", demand_source="simulated", demand=mean,
                       borrow_rate=base_rate,
                       simulation=SimulatedDemand(mean=mean, base_rate=base_rate, seed=3))
    rng = random.Random(7)
    for n in range(lenders):
        user_id = accounts.create_user(app.uow(), f"lender{n}")
        for ccy, size in (("BTC", D(1)), ("USDT", D(10_000))):
            amount = size * rng.randint(100, 1000) / 100
            accounts.deposit(app.uow(), user_id, ccy, amount + 1)
            savings.purchase(app.uow(), user_id, ccy, amount, D(rng.randint(100, 1500)) / 10_000)


# --- 1. many threads on one user's money ----------------------------------------------------------

CCY = "USDT"
THREADS = 16
OPERATIONS = 30  # per thread
START = D(1000)
# What each operation may be refused with; anything else (a deadlock, a serialisation failure, a
# constraint violation, a lost connection) is a bug.
REFUSALS: dict[str, type[Exception] | tuple[type[Exception], ...]] = {
    "purchase": InsufficientBalance,
    "redeem": AmountTooLarge,
    "deposit": (),
    "withdraw": InsufficientBalance,
}


def random_operation(rng: random.Random) -> tuple[str, Decimal]:
    """Mostly purchases and redemptions of up to 300 against 1000; a few deposits and withdrawals."""
    roll = rng.random()
    kind = ("purchase" if roll < 0.42 else "redeem" if roll < 0.84
            else "deposit" if roll < 0.92 else "withdraw")
    return kind, D(rng.randint(1, (50 if kind == "deposit" else 300) * 100)) / 100


@dataclass
class Hammer:
    """One user's account hammered by many threads; records what succeeded and what was refused."""

    engine: sa.Engine
    user_id: int
    done: list[tuple[str, Decimal, savings.Position | None]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, kind: str, amount: Decimal) -> None:
        uow = UnitOfWork(self.engine)
        result: savings.Position | None = None
        try:
            if kind == "purchase":
                result = savings.purchase(uow, self.user_id, CCY, amount)
            elif kind == "redeem":
                result = savings.redeem(uow, self.user_id, CCY, amount)
            elif kind == "deposit":
                accounts.deposit(uow, self.user_id, CCY, amount)
            else:
                accounts.withdraw(uow, self.user_id, CCY, amount)
        except REFUSALS[kind]:
            with self.lock:
                self.refused[kind] += 1
        except Exception as error:  # recorded, and fails the test
            with self.lock:
                self.unexpected.append(f"{kind} {amount}: {type(error).__name__}: {error}")
        else:
            with self.lock:
                self.done.append((kind, amount, result))

    def total(self, kind: str) -> Decimal:
        return sum((amount for k, amount, _ in self.done if k == kind), ZERO)


def hammered_user(url: str, *, demand: Decimal = ZERO) -> tuple[Flexearn, Hammer]:
    """A user with 1000 in funding and an empty position at a 36.5% minimum rate.

    Given a demand, the market also has a steady lender, cheaper than the user, so every hour
    after the first pays interest.
    """
    app = Flexearn(url)
    start_clock(app, T0 + 1)
    accounts.add_currency(app.uow(), CCY, 8)
    markets.set_market(app.uow(), CCY, mode="auction", demand=demand)
    user_id = accounts.create_user(app.uow(), "hammered")
    accounts.deposit(app.uow(), user_id, CCY, START)
    savings.set_rate(app.uow(), user_id, CCY, D("0.365"))
    if demand > 0:
        lender(app, "steady", CCY, D(100), D("0.02"))
    # A connection per thread: a pool as big as the crowd, so nobody queues for a connection.
    return app, Hammer(make_engine(url, pool_size=THREADS + 4, max_overflow=0), user_id)


def savings_trail(engine: sa.Engine, position_id: int) -> list[Decimal]:
    """The position's amount after each purchase or redemption, in journal order.

    Their entries are numbered while the position row is locked, so journal order is the order in
    which they were serialised.
    """
    leg = t.journal_leg.c
    with engine.connect() as conn:
        amounts = conn.execute(
            sa.select(leg.amount).where(leg.position_id == position_id).order_by(leg.entry_id)
        ).scalars().all()
    trail, running = [], ZERO
    for amount in amounts:
        running += amount
        trail.append(running)
    return trail


def test_concurrent_purchases_and_redemptions_on_one_account_are_serialised_and_lose_nothing(
    database_url: str,
) -> None:
    app, hammer = hammered_user(database_url)
    plans = [[random_operation(random.Random(n)) for _ in range(OPERATIONS)] for n in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def trader(plan: list[tuple[str, Decimal]]) -> None:
        barrier.wait()
        for kind, amount in plan:
            hammer.run(kind, amount)

    run_threads([lambda plan=plan: trader(plan) for plan in plans])

    assert hammer.unexpected == []
    assert sum(hammer.refused.values()) + len(hammer.done) == THREADS * OPERATIONS
    # the crowd asked for far more than there is: both refusals happened, and both operations succeeded
    assert hammer.refused["purchase"] > 0
    assert hammer.refused["redeem"] > 0
    assert {kind for kind, _, _ in hammer.done} >= {"purchase", "redeem"}

    purchased, redeemed = hammer.total("purchase"), hammer.total("redeem")
    deposited, withdrawn = hammer.total("deposit"), hammer.total("withdraw")
    (funding,) = accounts.funding_balances(app.uow(), hammer.user_id)
    held = position(app, hammer.user_id, CCY)
    assert funding.available == START + deposited - withdrawn - purchased + redeemed
    assert held.amt == purchased - redeemed
    assert funding.available + held.amt == START + deposited - withdrawn
    assert funding.available >= 0
    assert held.amt >= 0
    assert held.loan == 0

    # Each successful purchase or redemption saw one state of a single serial history, never below 0.
    with app.engine.connect() as conn:
        found = repo.position(conn, hammer.user_id, CCY)
    assert found is not None
    trail = savings_trail(app.engine, found.id)
    assert min(trail) >= 0
    assert Counter(trail) == Counter(result.amt for _, _, result in hammer.done if result is not None)
    assert_ledger_ok(app)
    hammer.engine.dispose()
    app.close()


@dataclass
class SettlingRun:
    settled: list[settlement.SettledHour] = field(default_factory=list)
    trading_stops: float = float("inf")  # monotonic time at which the traders stop at the latest
    settler_through: float = float("inf")  # monotonic time at which the settler was through


def trade_while_settling(hammer: Hammer, hours: int, *, trade_for: float | None) -> SettlingRun:
    """THREADS traders on the hammered account while a settler moves the clock, settling `hours` hours.

    The traders do OPERATIONS operations each; or, given `trade_for` seconds, keep trading until
    the settler is through or the time is up.
    """
    run = SettlingRun()
    barrier = threading.Barrier(THREADS + 1)
    through = threading.Event()

    def trader(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        if trade_for is None:
            for _ in range(OPERATIONS):
                hammer.run(*random_operation(rng))
            return
        while not through.is_set() and time.monotonic() < run.trading_stops:
            hammer.run(*random_operation(rng))

    def settler() -> None:
        barrier.wait()
        try:
            for _ in range(hours):
                with UnitOfWork(hammer.engine) as uow:
                    clock.advance(uow.conn, HOUR_MS)
                    uow.commit()
                run.settled.extend(scheduler.settle_due_hours(hammer.engine))
        except Exception as error:
            hammer.unexpected.append(f"settlement: {type(error).__name__}: {error}")
        finally:
            run.settler_through = time.monotonic()
            through.set()

    if trade_for is not None:
        run.trading_stops = time.monotonic() + trade_for
    run_threads([settler, *(lambda n=n: trader(n) for n in range(THREADS))])
    return run


def assert_settled_and_balanced(app: Flexearn, hammer: Hammer, run: SettlingRun, hours: int) -> None:
    assert hammer.unexpected == []
    assert [(s.ccy, s.hour) for s in run.settled] == [(CCY, hour) for hour in hour_range(hours)]
    assert settled_hours(app.engine) == {CCY: hour_range(hours)}
    deposited, withdrawn = hammer.total("deposit"), hammer.total("withdraw")
    (funding,) = accounts.funding_balances(app.uow(), hammer.user_id)
    held = position(app, hammer.user_id, CCY)
    assert sum((s.interest_paid for s in run.settled), ZERO) > 0
    assert funding.available + held.amt == START + deposited - withdrawn + held.earnings
    assert funding.available >= 0
    assert 0 <= held.loan <= held.amt
    assert_ledger_ok(app)


@pytest.mark.postgres
def test_settlement_running_during_the_hammering_neither_deadlocks_nor_loses_money(postgres_url: str) -> None:
    # While the starvation bug below stands, most hours get settled only once the burst is over.
    app, hammer = hammered_user(postgres_url, demand=D(700))
    run = trade_while_settling(hammer, 24, trade_for=None)
    assert_settled_and_balanced(app, hammer, run, 24)
    hammer.engine.dispose()
    app.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_settlement_is_not_starved_by_a_continuous_stream_of_trades(postgres_url: str) -> None:
    app, hammer = hammered_user(postgres_url, demand=D(700))
    try:
        # Three hours of a one-position market take milliseconds: five seconds is generous.
        run = trade_while_settling(hammer, 3, trade_for=5.0)
        assert run.settler_through < run.trading_stops, "settlement got through only once trading stopped"
        assert_settled_and_balanced(app, hammer, run, 3)
    finally:
        hammer.engine.dispose()
        app.close()


# --- 2. settlers racing for the same hours -----------------------------------------------------------


def test_settlers_racing_for_the_same_hours_settle_each_exactly_once_and_agree(
    database_url: str, tmp_path: Path
) -> None:
    app = Flexearn(database_url)
    small_world(app)
    reference = Flexearn(f"sqlite:///{tmp_path / 'reference.db'}")  # the same world, a single settler
    small_world(reference)
    racers = [Flexearn(database_url, migrate_schema=False) for _ in range(2)]  # an engine each
    won: list[list[settlement.SettledHour]] = [[] for _ in racers]
    errors: list[str] = []
    expected: list[settlement.SettledHour] = []
    for _ in range(3):  # three rounds of eight hours due in each market
        move_clock(app, 8)
        barrier = threading.Barrier(len(racers))

        def race(i: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                won[i].extend(scheduler.settle_due_hours(racers[i].engine))
            except Exception as error:
                errors.append(f"racer {i}: {type(error).__name__}: {error}")

        run_threads([lambda i=i: race(i) for i in range(len(racers))])
        expected += advance(reference, 8)
    print(f"hours won by each racer: {[len(hours) for hours in won]}")

    assert errors == []
    by_hour = operator.attrgetter("ccy", "hour")
    claimed = sorted(won[0] + won[1], key=by_hour)
    # every hour claimed by exactly one racer, with the numbers of the uncontested run
    every_hour = [(ccy, hour) for ccy in ("BTC", "USDT") for hour in hour_range(24)]
    assert [by_hour(s) for s in claimed] == every_hour
    assert claimed == sorted(expected, key=by_hour)
    assert settled_hours(app.engine) == {"BTC": hour_range(24), "USDT": hour_range(24)}
    assert scheduler.settle_due_hours(racers[0].engine) == []
    assert_same_state(snapshot(app.engine), snapshot(reference.engine))
    assert_ledger_ok(app)
    for instance in (app, reference, *racers):
        instance.close()


# --- 3a. the settlement process killed at random moments -------------------------------------------

BIG_USERS = 10_000  # two positions each: 20,000 positions over two currencies
BIG_HOURS = 8  # due in each currency
KILLS = 5


def bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(sa.insert(table), rows)
        return
    columns = list(rows[0])
    quoted = ", ".join(f'"{column}"' for column in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def bulk_lenders(conn: sa.Connection, users: int, rng: random.Random, now: int) -> None:
    """Users who each deposited and bought savings in both currencies: the rows the services write.

    Per user and currency: a funding account holding the change, a deposit entry, a purchase entry
    whose savings leg is tagged with the position, the position and its rate setting.
    """
    places = {"BTC": 8, "USDT": 6}
    system = {(kind, ccy): repo.account_id(conn, AccountRef.system(kind, ccy))
              for kind in (AccountKind.EXTERNAL, AccountKind.SAVINGS) for ccy in places}
    tables = (t.user, t.account, t.position, t.rate_setting, t.journal_entry, t.journal_leg)
    next_id = {table.name: (conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0) + 1
               for table in tables}
    rows: dict[str, list[dict[str, Any]]] = {table.name: [] for table in tables}

    def new(table: sa.Table, **values: Any) -> int:
        row_id = next_id[table.name]
        next_id[table.name] += 1
        rows[table.name].append({"id": row_id, **values})
        return row_id

    def entry(kind: str, ccy: str, ref: str, *legs: tuple[int, Decimal, int | None]) -> None:
        entry_id = new(t.journal_entry, ccy=ccy, kind=kind, ref=ref, ts=now, created_at=now)
        for account_id, amount, position_id in legs:
            new(t.journal_leg, entry_id=entry_id, account_id=account_id, ccy=ccy, amount=amount,
                position_id=position_id)

    for _ in range(users):
        user_id = new(t.user, name=f"bulk{next_id[t.user.name]}", level="normal", created_at=now)
        for ccy, precision in places.items():
            quantum = D(1).scaleb(-precision)
            amt = (D(rng.randint(1, 10**6)) / (1000 if ccy == "BTC" else 1)).quantize(quantum)
            change = (D(rng.randint(1, 1000)) / 100).quantize(quantum)
            rate = D(rng.randint(100, 2000)) / 10_000
            funding = new(t.account, key=AccountRef.funding(user_id, ccy).key, kind="funding", ccy=ccy,
                          user_id=user_id, balance=change)
            position_id = new(t.position, user_id=user_id, ccy=ccy, amt=amt, loan=ZERO, earnings=ZERO,
                              rate=rate, rate_seq=next_id[t.rate_setting.name], rate_set_at=now)
            new(t.rate_setting, position_id=position_id, rate=rate, ts=now)
            entry("deposit", ccy, f"user:{user_id}",
                  (system[AccountKind.EXTERNAL, ccy], -(amt + change), None), (funding, amt + change, None))
            entry("purchase", ccy, f"position:{position_id}",
                  (funding, -amt, None), (system[AccountKind.SAVINGS, ccy], amt, position_id))
    for table in tables:
        bulk_insert(conn, table, rows[table.name])
    if conn.dialect.name == "postgresql":  # the ids above were given, not drawn from the sequences
        for table in tables:
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"(SELECT max(id) FROM {table.name}))"))


def big_world(url: str, seed: int) -> None:
    """BIG_USERS lenders in two markets, with BIG_HOURS hours due in each; the ledger checked green."""
    app = Flexearn(url)
    try:
        start_clock(app, T0 + 1)
        accounts.add_currency(app.uow(), "BTC", 8)
        accounts.add_currency(app.uow(), "USDT", 6)
        markets.set_market(app.uow(), "BTC", mode="auction", demand=D(BIG_USERS * 200))  # 40% of supply
        mean, base_rate = D(BIG_USERS * 200_000), D("0.06")
        markets.set_market(app.uow(), "USDT", mode="pro_rata", demand_source="simulated", demand=mean,
                           borrow_rate=base_rate,
                           simulation=SimulatedDemand(mean=mean, base_rate=base_rate, seed=seed))
        with app.uow() as uow:
            bulk_lenders(uow.conn, BIG_USERS, random.Random(seed), uow.now())
            uow.commit()
        move_clock(app, BIG_HOURS)
        assert_ledger_ok(app)
    finally:
        app.close()


@contextlib.contextmanager
def cloned_database(url: str, tmp_path: Path) -> Iterator[str]:
    """A copy of the database (no one may be connected to a PostgreSQL one while it is copied)."""
    source = sa.make_url(normalise_url(url))
    if source.get_backend_name() == "sqlite":
        target = tmp_path / "clone.db"
        with contextlib.closing(sqlite3.connect(str(source.database))) as original, \
                contextlib.closing(sqlite3.connect(target)) as copy:
            original.backup(copy)
        yield f"sqlite:///{target}"
        return
    name = f"{source.database}_clone"
    admin = make_engine(source.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"'))
        yield source.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def observer(url: str) -> sa.Engine:
    """An engine that only reads: on SQLite without BEGIN IMMEDIATE, so it never waits for the writer."""
    if url.startswith("sqlite"):
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    return make_engine(url, poolclass=sa.pool.NullPool)


def settle_command(url: str) -> list[str]:
    """`flexearn settle --json --db URL`, in a process of its own."""
    script = Path(sys.executable).with_name("flexearn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flexearn.cli"]
    return [*command, "settle", "--json", "--db", url]


def count_hours(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.market_hour)).scalar_one())


def assert_no_partial_hour(engine: sa.Engine) -> int:
    """Settled hours run from the first without a gap, and nothing of a later hour exists; their count."""
    hours = settled_hours(engine)
    history, entry = t.lending_history.c, t.journal_entry.c
    with engine.connect() as conn:
        query = sa.select(history.ccy, sa.func.max(history.ts)).group_by(history.ccy)
        last_history = dict(conn.execute(query).all())
        refs = conn.execute(sa.select(entry.ccy, entry.ref).where(entry.kind == "interest")).all()
    for ccy, settled in hours.items():
        assert settled == hour_range(len(settled)), f"{ccy}: settled hours have a gap"
        assert last_history.get(ccy, 0) < settled[-1], f"{ccy}: lending history of an unsettled hour"
    unsettled = [ref for ccy, ref in refs if int(ref.split(":")[1]) not in hours.get(ccy, [])]
    assert unsettled == [], "interest entries of unsettled hours"
    return sum(len(settled) for settled in hours.values())


def writer_in_transaction(url: str, engine: sa.Engine) -> bool:
    """Whether another connection has a write transaction open at this moment."""
    if url.startswith("sqlite"):
        path = str(engine.url.database)
        with contextlib.closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as probe:
            try:
                probe.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # database is locked: the writer is mid-transaction
                return True
            probe.execute("ROLLBACK")
            return False
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL")).scalar())


def kill_mid_settlement(url: str, watch: sa.Engine, rng: random.Random, seconds_per_hour: float) -> bool:
    """Start `flexearn settle`, let it settle an hour, SIGKILL it at a random moment of the next one.

    Returns whether the kill struck inside a write transaction.
    """
    wait_for = count_hours(watch) + 1
    process = subprocess.Popen(settle_command(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while count_hours(watch) < wait_for:
            if process.poll() is not None:
                pytest.fail(f"settlement ended before it was killed: {process.communicate()[1]!r}")
            assert time.monotonic() < deadline, "settlement made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0, seconds_per_hour))
        inside = writer_in_transaction(url, watch)
        assert process.poll() is None, "settlement finished before the kill"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    return inside


@pytest.mark.slow
def test_settlement_killed_at_random_moments_resumes_and_settles_every_hour_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")  # shown when the test fails
    rng = random.Random(seed)
    big_world(database_url, seed)
    total = 2 * BIG_HOURS

    with cloned_database(database_url, tmp_path) as reference_url:  # an identical world, never killed
        reference = Flexearn(reference_url, migrate_schema=False)
        started = time.monotonic()
        assert len(scheduler.settle_due_hours(reference.engine)) == total
        seconds_per_hour = (time.monotonic() - started) / total
        expected = snapshot(reference.engine)
        reference.close()

    watch = observer(database_url)
    settled_at_kill, inside = [], 0
    for _ in range(KILLS):
        inside += kill_mid_settlement(database_url, watch, rng, seconds_per_hour)
        settled_at_kill.append(assert_no_partial_hour(watch))  # whatever the moment, nothing half-done
    print(f"hours settled when each kill struck: {settled_at_kill} of {total}; "
          f"{inside} of {KILLS} kills struck inside a write transaction")
    assert settled_at_kill[-1] < total  # the last kill, too, struck with work left

    finished = subprocess.run(settle_command(database_url), capture_output=True, text=True, timeout=300,
                              check=False)
    assert finished.returncode == 0, finished.stderr
    assert len(json.loads(finished.stdout)["settled"]) == total - settled_at_kill[-1]
    assert settled_hours(watch) == {"BTC": hour_range(BIG_HOURS), "USDT": hour_range(BIG_HOURS)}
    assert_same_state(snapshot(watch), expected)
    watch.dispose()
    app = Flexearn(database_url, migrate_schema=False)
    assert_ledger_ok(app)
    app.close()


# --- 3b. a settlement transaction failing part-way ---------------------------------------------------

# Where BTC's hour 3 fails: a trigger has the database itself refuse one write, after the writes
# before it went through (the interest entry, and some of the positions or of the history rows);
# or the commit fails, after every write of the hour, its market_hour row included.
FAULTS = {
    "position update": ("BEFORE UPDATE ON savings_position", "NEW.id = {pid}"),
    "lending history insert": ("BEFORE INSERT ON lending_history", "NEW.position_id = {pid}"),
    "hour row insert": ("BEFORE INSERT ON market_hour", "NEW.ccy = 'BTC'"),
    "commit": None,
}


def install_trigger(engine: sa.Engine, name: str, when: str, condition: str, body: str) -> Callable[[], None]:
    """A row trigger running `body` (PL/pgSQL, or SQLite's BEGIN ... END); returns its remover."""
    table = when.rsplit(maxsplit=1)[-1]
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(sa.text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                                 f"AS $$ {body} $$"))
            conn.execute(sa.text(f"CREATE TRIGGER {name} {when} FOR EACH ROW WHEN ({condition}) "
                                 f"EXECUTE FUNCTION {name}()"))
        else:
            conn.execute(sa.text(f"CREATE TRIGGER {name} {when} FOR EACH ROW WHEN {condition} {body}"))

    def remove() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TRIGGER {name} ON {table}" if postgres else f"DROP TRIGGER {name}"))
            if postgres:
                conn.execute(sa.text(f"DROP FUNCTION {name}()"))

    return remove


def middle_lent_position(engine: sa.Engine, ccy: str) -> int:
    """A position the next settlement pays interest to, neither the first nor the last."""
    p = t.position.c
    with engine.connect() as conn:
        ids = conn.execute(sa.select(p.id).where(p.ccy == ccy, p.loan > ZERO).order_by(p.id)).scalars().all()
    assert len(ids) >= 3
    return ids[len(ids) // 2]


def world_with_hours_due(url: str) -> tuple[Flexearn, State]:
    """The small world with hours 1 and 2 settled and 3 to 5 due; and BTC's state before hour 3."""
    app = Flexearn(url)
    small_world(app)
    advance(app, 2)  # the loans matched at hour 2 earn interest at hour 3
    move_clock(app, 3)
    return app, only(snapshot(app.engine), "BTC")


def assert_nothing_of_btc_hour_3_written(app: Flexearn, btc_before: State) -> None:
    assert settled_hours(app.engine)["BTC"] == hour_range(2)
    assert_same_state(only(snapshot(app.engine), "BTC"), btc_before)
    assert_ledger_ok(app)


def assert_retry_settles_the_rest_once(app: Flexearn, tmp_path: Path) -> None:
    retried = {(s.ccy, s.hour) for s in scheduler.settle_due_hours(app.engine)}
    assert {("BTC", hour) for hour in hour_range(5)[2:]} <= retried
    assert scheduler.settle_due_hours(app.engine) == []
    assert settled_hours(app.engine) == {"BTC": hour_range(5), "USDT": hour_range(5)}
    reference = Flexearn(f"sqlite:///{tmp_path / 'reference.db'}")  # the same world, never interrupted
    small_world(reference)
    advance(reference, 5)
    assert_same_state(snapshot(app.engine), snapshot(reference.engine))
    reference.close()
    assert_ledger_ok(app)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_hour_whose_transaction_fails_part_way_leaves_no_trace_and_settles_once_on_retry(
    database_url: str, tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, btc_before = world_with_hours_due(database_url)
    trigger = FAULTS[fault]
    if trigger is None:
        def failing_commit(uow: UnitOfWork) -> None:
            raise RuntimeError("injected fault")

        monkeypatch.setattr(UnitOfWork, "commit", failing_commit)
        remove = monkeypatch.undo
    else:
        when, condition = trigger
        body = ("BEGIN RAISE EXCEPTION 'injected fault'; END;" if app.engine.dialect.name == "postgresql"
                else "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
        condition = condition.format(pid=middle_lent_position(app.engine, "BTC"))
        remove = install_trigger(app.engine, "inject_fault", when, condition, body)

    # the database's refusal, through SQLAlchemy or straight from the driver
    refusals = (sa.exc.DBAPIError, sqlite3.Error, psycopg.Error, RuntimeError)
    with pytest.raises(refusals, match="injected fault"):
        scheduler.settle_due_hours(app.engine)

    assert_nothing_of_btc_hour_3_written(app, btc_before)
    remove()
    assert_retry_settles_the_rest_once(app, tmp_path)
    app.close()


@pytest.mark.postgres
def test_settlement_whose_connection_the_server_terminates_mid_hour_leaves_no_trace(
    postgres_url: str, tmp_path: Path
) -> None:
    app, btc_before = world_with_hours_due(postgres_url)
    # BTC's settlement waits for an advisory lock we hold as it writes its lending history, after
    # it updated the positions and posted the interest; the server terminates it there.
    remove = install_trigger(app.engine, "pause_settlement", "BEFORE INSERT ON lending_history",
                             "NEW.ccy = 'BTC'", "BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END;")
    errors: list[BaseException] = []

    def settle() -> None:
        try:
            scheduler.settle_due_hours(app.engine)
        except Exception as error:
            errors.append(error)

    with app.engine.connect() as holder:
        holder.execute(sa.text("SELECT pg_advisory_lock(4242)"))
        holder.commit()
        thread = threading.Thread(target=settle, daemon=True)
        thread.start()
        waiting = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                          "AND wait_event_type = 'Lock' AND wait_event = 'advisory'")
        deadline = time.monotonic() + 30
        while (pid := holder.execute(waiting).scalar()) is None:
            holder.commit()
            assert time.monotonic() < deadline, "settlement never reached the lending history"
            time.sleep(0.01)
        wrote = sa.text(
            "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation "
            "WHERE pid = :pid AND mode = 'RowExclusiveLock' "
            "AND relname IN ('savings_position', 'journal_leg')")
        assert holder.execute(wrote, {"pid": pid}).scalar() >= 1  # the hour's first writes are in flight
        assert holder.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
        holder.execute(sa.text("SELECT pg_advisory_unlock(4242)"))
        holder.commit()
        thread.join(THREAD_TIMEOUT)
        assert not thread.is_alive()

    assert len(errors) == 1, errors
    assert isinstance(errors[0], (sa.exc.OperationalError, psycopg.OperationalError)), errors
    assert_nothing_of_btc_hour_3_written(app, btc_before)
    remove()
    assert_retry_settles_the_rest_once(app, tmp_path)
    app.close()
