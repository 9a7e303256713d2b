"""Benchmark of hourly market settlement and daily catalog settlement against the bare SQL floor.

    python bench/settlement.py [--kind market|catalog|both] [--sizes 10000,100000,1000000]
                               [--db sqlite,postgresql] [--repeat 1] [--check-max 10000]

`--kind market` (hourly settlement of savings positions) is described first; `--kind catalog`
(daily settlement of catalog holdings) below it; `both` (the default) runs the two.

For every database and size: a fresh database (a SQLite file in a temp dir, or a new PostgreSQL
database, dropped afterwards) is filled with `size` savings positions spread evenly over 10
currencies (size / 10 users, each holding one position in every currency, rows interleaved as
users would create them), booked in the ledger: one seed entry per currency moving the money
from `external` into the savings control account, with one savings leg per position, so the
ledger check holds.

Hour 1 is settled untimed (it only matches: every market's static demand exceeds its supply, so
everything is lent). Hour 2 is timed: interest is paid on every position, every position is
re-matched and gets a lending history row. That is the hour of the 10 currencies, one
transaction each, as the scheduler runs it (`settlement.settle_due`: on PostgreSQL
FLEXEARN_SETTLEMENT_THREADS currencies side by side, default 2; set it to 1 for one at a time).

Then, in the same process and on the same rows, the SQL floor is timed: one UPDATE rewriting
amt, earnings and loan of every position, and one INSERT ... SELECT writing one history row per
position, in one transaction. The ratio settlement / floor is what the issue asks to keep
within 1.5. The same floor is also timed per currency (ten UPDATE + INSERT pairs, ten
transactions, as settlement commits), to tell the cost of that structure from the engine's own.

Before each timed phase the database is tidied untimed, as a background vacuum/checkpoint would
(PostgreSQL: VACUUM ANALYZE and CHECKPOINT; SQLite: a WAL checkpoint). `--repeat N` times N
hours (each the same work) and N floors and reports medians.

Each (database, size) runs in two fresh subprocesses: `setup` (fill, settle hour 1) and
`measure` (settle, floors, check), so the peak RSS reported (VmHWM, read right after the last
timed settlement) is that of a process that did only the settlement (plus imports), not of the
loading. Also reported: the settlement's CPU seconds, and the MB it wrote (SQLite: the settling
process's `/proc/self/io` wchar, the WAL and its checkpoints; PostgreSQL: how far the server's
WAL moved), which, unlike seconds, other work on the machine does not disturb. Output: a JSON
line per result as it finishes, then a table per kind.

Catalog: the same database set-up, with `size` holdings of 10 flexible ladder products (one per
coin of the market benchmark, tiers 0-200 @ 6 %, 200-5000 @ 50 % and, for every other product,
5000-1 000 000 @ 2 %; profit precision the coin's), size / 10 users each holding every product, the
same amounts as the positions. Booked as `subscribe` would book them: per coin one seed entry from
`external` into the `earn` control account with one leg per holding (tagged holding_id), plus one
`subscribe` order per holding. Every holding earns from the first settled day: day 1 is settled
untimed in `setup`, day 2 is timed in `measure` (`settlement.settle_day` for the 10
products, one transaction each, as the scheduler runs it). The floor: one UPDATE of amount,
accrued, total_profit and last_profit of every holding and one INSERT ... SELECT of one
`pay_interest` order per holding, in one transaction; and the same per product (ten transactions).
That floor writes none of the ledger a day pays into: a third one, `floor+ledger`, adds per
product a journal entry, a leg per holding to its holder's funding account, the balancing leg
from interest expense and each of those funding balances rewritten (one transaction, rolled back:
legs are append-only; see `ledger_floor_seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, migrate, normalise_url
from flexearn.config import Settings
from flexearn.domain.catalog import DAY_MS, day_start
from flexearn.domain.money import plain
from flexearn.services import ledger_check, settlement
from flexearn.services.unit_of_work import UnitOfWork

THREADS = Settings.from_env().settlement_threads
POSTGRES_ADMIN_URL = os.environ.get("FLEXEARN_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CURRENCIES: tuple[tuple[str, int], ...] = (
    ("BTC", 8), ("ETH", 8), ("USDT", 16), ("USDC", 6), ("BNB", 8),
    ("SOL", 8), ("XRP", 6), ("ADA", 6), ("DOGE", 8), ("TRX", 16),
)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR1 = T0 + HOUR_MS  # first hour settled: the match
HOUR2 = HOUR1 + HOUR_MS  # the timed hour: interest on everything, re-match, history rows
SEED = 20260101
RESULT_PREFIX = "RESULT "
KINDS = ("market", "catalog")
# Catalog: product i + 1 is in the i-th coin of CURRENCIES; every holding earns from T0.
LADDER = ((Decimal(0), Decimal(200), Decimal("6.00")), (Decimal(200), Decimal(5000), Decimal("50.00")))
TOP_TIER = (Decimal(5000), Decimal(1_000_000), Decimal("2.00"))  # on every other product
# the products' first day, settled in setup: Bitget's days start at 16:00 UTC, and this is the first
# whole one after T0 (2026-01-02T16:00Z), so that every holding earns on it
DAY1 = day_start(T0) + 2 * DAY_MS
DAY2 = DAY1 + DAY_MS  # the timed day: interest on every holding, one pay_interest order each


# --- filling the database --------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    users: list[tuple[int, str, str, int]]
    # id, user_id, ccy, amt, loan, earnings, rate, rate_seq, rate_set_at
    positions: list[tuple[int, int, str, str, str, str, str, int, int]]
    totals: dict[str, int]  # per currency, the sum of amt in units of 10^-precision


def make_fill(size: int) -> Fill:
    """size / 10 users with one position in each currency; amounts 10 to 100 000, rates 1% to 20%."""
    if size % len(CURRENCIES):
        raise SystemExit(f"size must be a multiple of {len(CURRENCIES)}")
    rng = random.Random(SEED)
    n_users = size // len(CURRENCIES)
    users = [(u, f"bench{u}", "normal", T0) for u in range(1, n_users + 1)]
    positions = []
    totals = dict.fromkeys((ccy for ccy, _ in CURRENCIES), 0)
    position_id = 0
    for u in range(1, n_users + 1):
        for ccy, places in CURRENCIES:
            position_id += 1
            # purchases are written with at most 4 decimals, as people type them
            units = rng.randrange(10 * 10**4, 100_000 * 10**4) * 10 ** (places - 4)
            totals[ccy] += units
            amt = plain(Decimal(units).scaleb(-places))
            rate = plain(Decimal(rng.randrange(10, 201)).scaleb(-3))
            positions.append((position_id, u, ccy, amt, "0", "0", rate, position_id, T0))
    return Fill(users, positions, totals)


def fill(engine: sa.Engine, size: int) -> None:
    data = make_fill(size)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            # Bulk load: skip the per-row triggers (FK checks and the deferred per-entry balance
            # check, which would sum a 100k-leg entry once per leg); the ledger check re-verifies.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.insert(t.currency), [{"ccy": c, "precision": p, "enabled": True}
                                             for c, p in CURRENCIES])
        conn.execute(
            sa.insert(t.market),
            [
                {"ccy": ccy, "mode": "auction", "insurance_fee": Decimal("0.15"), "demand_source": "static",
                 # more than the whole supply with a year of interest: everything is lent
                 "demand": Decimal(10**12), "borrow_rate": Decimal(0), "simulation": "{}",
                 "first_hour": HOUR1}
                for ccy, _ in CURRENCIES
            ],
        )
        accounts: dict[tuple[str, str], int] = {}
        for ccy, _ in CURRENCIES:
            for kind in ("external", "savings"):
                accounts[kind, ccy] = conn.execute(
                    sa.insert(t.account)
                    .values(key=f"{kind}:{ccy}", kind=kind, ccy=ccy, user_id=None, balance=None)
                    .returning(t.account.c.id)
                ).scalar_one()
        entries = {
            ccy: conn.execute(
                sa.insert(t.journal_entry)
                .values(ccy=ccy, kind="purchase", ref="bench:seed", ts=T0, created_at=T0)
                .returning(t.journal_entry.c.id)
            ).scalar_one()
            for ccy, _ in CURRENCIES
        }
        places = dict(CURRENCIES)
        legs: list[tuple[int, int, str, str, int | None]] = [
            (entries[ccy], accounts["external", ccy], ccy, plain(Decimal(-total).scaleb(-places[ccy])), None)
            for ccy, total in data.totals.items()
        ]
        legs += [(entries[p[2]], accounts["savings", p[2]], p[2], p[3], p[0]) for p in data.positions]
        _load(conn, "user_account", "id, name, level, created_at", data.users)
        _load(conn, "savings_position", "id, user_id, ccy, amt, loan, earnings, rate, rate_seq, rate_set_at",
              data.positions)
        _load(conn, "journal_leg", "entry_id, account_id, ccy, amount, position_id", legs)
        _reset_ids(conn, "user_account", "savings_position")


def fill_catalog(engine: sa.Engine, size: int) -> None:
    """The positions of `make_fill` as holdings: product i + 1 in the i-th coin, booked in `earn`."""
    data = make_fill(size)
    places = dict(CURRENCIES)
    product_of = {ccy: i + 1 for i, (ccy, _) in enumerate(CURRENCIES)}
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # as in fill(): the ledger check re-verifies
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.insert(t.currency), [{"ccy": c, "precision": p, "enabled": True}
                                             for c, p in CURRENCIES])
        conn.execute(sa.insert(t.product), [
            {"id": product_of[ccy], "coin": ccy, "period_type": "flexible", "period_days": None,
             "apy_type": "ladder", "advance_redeem": False, "settle_method": "daily",
             "status": "in_progress", "level": "normal", "single_min": Decimal(0),
             "single_max": Decimal(10**12), "quota": None, "subscribe_precision": min(p, 8),
             "profit_precision": p, "redeem_delay_days": 0, "start_time": None, "end_time": None,
             "first_day": DAY1, "created_at": T0 - 2 * HOUR_MS}
            for ccy, p in CURRENCIES
        ])
        conn.execute(sa.insert(t.product_tier), [
            {"product_id": pid, "rate_level": level, "min_step": low, "max_step": high, "apy": apy}
            for pid in product_of.values()
            for level, (low, high, apy) in enumerate(LADDER + ((TOP_TIER,) if pid % 2 else ()))
        ])
        accounts: dict[tuple[str, str], int] = {}
        for ccy, _ in CURRENCIES:
            for kind in ("external", "earn", "interest_expense"):
                accounts[kind, ccy] = conn.execute(
                    sa.insert(t.account)
                    .values(key=f"{kind}:{ccy}", kind=kind, ccy=ccy, user_id=None, balance=None)
                    .returning(t.account.c.id)
                ).scalar_one()
        entries = {
            ccy: conn.execute(
                sa.insert(t.journal_entry)
                .values(ccy=ccy, kind="subscribe", ref="bench:seed", ts=T0 - HOUR_MS, created_at=T0)
                .returning(t.journal_entry.c.id)
            ).scalar_one()
            for ccy, _ in CURRENCIES
        }
        # id, user_id, product_id, amount, accrued, total_profit, last_profit, subscribed_at,
        # interest_time, expire_time, open: subscribed at T0 - 1h, earning from T0
        holdings = [(p[0], p[1], product_of[p[2]], p[3], "0", "0", "0", T0 - HOUR_MS, T0, None, True)
                    for p in data.positions]
        orders = [(h[0], h[1], h[2], h[0], "subscribe", h[3], "success", T0 - HOUR_MS, None)
                  for h in holdings]
        legs: list[tuple[int, int, str, str, int | None]] = [
            (entries[ccy], accounts["external", ccy], ccy, plain(Decimal(-total).scaleb(-places[ccy])), None)
            for ccy, total in data.totals.items()
        ]
        legs += [(entries[p[2]], accounts["earn", p[2]], p[2], p[3], p[0]) for p in data.positions]
        _load(conn, "user_account", "id, name, level, created_at", data.users)
        _load(conn, "earn_holding", "id, user_id, product_id, amount, accrued, total_profit, last_profit, "
              "subscribed_at, interest_time, expire_time, open", holdings)
        _load(conn, "earn_order", "id, user_id, product_id, holding_id, order_type, amount, status, ts, "
              "arrive_at", orders)
        _load(conn, "journal_leg", "entry_id, account_id, ccy, amount, holding_id", legs)
        _reset_ids(conn, "user_account", "earn_holding", "earn_order")


def _load(conn: sa.Connection, table: str, columns: str, rows: list[Any]) -> None:
    """COPY (PostgreSQL) or executemany (SQLite) of plain rows; amounts as canonical text."""
    if conn.dialect.name == "postgresql":
        _copy(conn, f"{table} ({columns})", rows)
        return
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    marks = ", ".join("?" for _ in columns.split(","))
    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
    cursor.close()


def _reset_ids(conn: sa.Connection, *tables: str) -> None:
    """PostgreSQL: the id sequences past the ids loaded (SQLite takes max(id) + 1 by itself)."""
    if conn.dialect.name == "postgresql":
        for table in tables:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )


def _copy(conn: sa.Connection, target: str, rows: list[Any]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        chunk: list[str] = []
        for row in rows:
            chunk.append("\t".join(r"\N" if v is None else str(v) for v in row))
            if len(chunk) >= 50_000:
                copy.write("\n".join(chunk) + "\n")
                chunk.clear()
        if chunk:
            copy.write("\n".join(chunk) + "\n")


def tidy(engine: sa.Engine) -> None:
    """Before each timed phase: the state a background vacuum/checkpoint would leave (untimed)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
    else:
        raw = engine.raw_connection()  # outside a transaction (the engine begins IMMEDIATE ones)
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


# --- the phases, each run in its own process ---------------------------------------------------


def settle_all(engine: sa.Engine, hour: int) -> int:
    """The hour of every currency, as the settler settles them: `FLEXEARN_SETTLEMENT_THREADS` side
    by side on PostgreSQL (default 2), one after the other on SQLite."""
    due = {ccy: [hour] for ccy, _ in CURRENCIES}
    settled = settlement.settle_due(engine, settlement.HOURS, due, threads=THREADS)
    assert len(settled) == len(CURRENCIES)
    return sum(h.positions_changed for h in settled)


def phase_setup(url: str, size: int) -> dict[str, Any]:
    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    fill(engine, size)
    tidy(engine)
    filled = time.perf_counter()
    matched = settle_all(engine, HOUR1)
    hour1 = time.perf_counter()
    assert matched == size, f"hour 1 matched {matched} of {size} positions"
    engine.dispose()
    return {"fill_s": round(filled - started, 3), "hour1_s": round(hour1 - filled, 3)}


def settle_products(engine: sa.Engine, day: int) -> int:
    """The day of every product (one per coin), as the settler settles them (see `settle_all`)."""
    due = {product_id: [day] for product_id in range(1, len(CURRENCIES) + 1)}
    settled = settlement.settle_due(engine, settlement.DAYS, due, threads=THREADS)
    assert len(settled) == len(CURRENCIES)
    return sum(d.holdings for d in settled)


def phase_setup_catalog(url: str, size: int) -> dict[str, Any]:
    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    fill_catalog(engine, size)
    tidy(engine)
    filled = time.perf_counter()
    earned = settle_products(engine, DAY1)
    day1 = time.perf_counter()
    assert earned == size, f"day 1 paid {earned} of {size} holdings"
    engine.dispose()
    return {"fill_s": round(filled - started, 3), "day1_s": round(day1 - filled, 3)}


def phase_measure_catalog(url: str, size: int, check_max: int, repeat: int) -> dict[str, Any]:
    """Settle days 2, 3, ... (each the same work: interest on every holding) and the floors.

    As `phase_measure`, with products for currencies: the floors' orders are written at ts = 0.
    """
    engine = make_engine(url)
    _open_connection(engine)
    baseline_mb = _peak_mb()
    settle_s, settle_cpu_s, floor_s, floor_product_s, written_mb = [], [], [], [], []
    floor_ledger_s: list[float] = []
    for round_ in range(repeat):
        day = DAY2 + round_ * DAY_MS
        tidy(engine)
        cpu, started, written = time.process_time(), time.perf_counter(), _written_mb(engine)
        earned = settle_products(engine, day)
        settle_s.append(time.perf_counter() - started)
        settle_cpu_s.append(time.process_time() - cpu)
        written_mb.append(_written_mb(engine) - written)
        with engine.connect() as conn:
            orders = conn.execute(
                sa.select(sa.func.count()).select_from(t.earn_order)
                .where(t.earn_order.c.ts == day, t.earn_order.c.order_type == "pay_interest")
            ).scalar_one()
        assert earned == size, f"day {round_ + 2} paid {earned} of {size} holdings"
        assert orders == size, f"day {round_ + 2} wrote {orders} interest orders for {size} holdings"
        peak_mb = _peak_mb()
        products = range(1, len(CURRENCIES) + 1)
        tidy(engine)
        floor_s.append(floor_seconds(engine, CATALOG_FLOOR, per="product_id", keys=products, split=False))
        tidy(engine)
        floor_product_s.append(
            floor_seconds(engine, CATALOG_FLOOR, per="product_id", keys=products, split=True))
        tidy(engine)
        floor_ledger_s.append(ledger_floor_seconds(engine))
    with engine.begin() as conn:
        conn.execute(sa.delete(t.earn_order).where(t.earn_order.c.ts == 0))
    check, check_s = _ledger_check(engine, size, check_max)
    engine.dispose()
    summary = _summary(size, "holdings", "product", settle_s, settle_cpu_s, floor_s, floor_product_s,
                       peak_mb, baseline_mb, check, check_s, written_mb)
    floor_ledger = statistics.median(floor_ledger_s)
    summary["samples"]["floor_with_ledger_s"] = _rounded(floor_ledger_s)
    return {**summary, "floor_with_ledger_s": round(floor_ledger, 3),
            "ratio_with_ledger": round(summary["seconds"] / floor_ledger, 2)}


def _open_connection(engine: sa.Engine) -> None:
    """Open the pooled connection outside the timing."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()


def _ledger_check(engine: sa.Engine, size: int, check_max: int) -> tuple[str, float | None]:
    if size > check_max:
        return f"skipped (size > --check-max {check_max})", None
    started = time.perf_counter()
    violations = ledger_check.check(UnitOfWork(engine))
    check = "green" if not violations else f"RED ({len(violations)}: {violations[:3]})"
    return check, round(time.perf_counter() - started, 3)


def phase_measure(url: str, size: int, check_max: int, repeat: int) -> dict[str, Any]:
    """Settle hours 2, 3, ... (each the same work: interest on all, all re-matched) and the floors.

    Each round: settle one hour, then the floor (one UPDATE + one INSERT ... SELECT over all
    positions, one transaction), then the same floor per currency (ten transactions, as
    settlement runs). Medians are reported. The floors' history rows are written at ts = 0 and
    deleted before the ledger check.
    """
    engine = make_engine(url)
    _open_connection(engine)
    baseline_mb = _peak_mb()
    settle_s, settle_cpu_s, floor_s, floor_ccy_s, written_mb = [], [], [], [], []
    for round_ in range(repeat):
        hour = HOUR2 + round_ * HOUR_MS
        tidy(engine)
        cpu, started, written = time.process_time(), time.perf_counter(), _written_mb(engine)
        changed = settle_all(engine, hour)
        settle_s.append(time.perf_counter() - started)
        settle_cpu_s.append(time.process_time() - cpu)
        written_mb.append(_written_mb(engine) - written)
        with engine.connect() as conn:
            history = conn.execute(
                sa.select(sa.func.count()).select_from(t.lending_history)
                .where(t.lending_history.c.ts == hour - HOUR_MS)
            ).scalar_one()
        assert changed == size, f"hour {round_ + 2} changed {changed} of {size} positions"
        assert history == size, f"hour {round_ + 2} wrote {history} history rows for {size} positions"
        peak_mb = _peak_mb()
        currencies = [f"'{ccy}'" for ccy, _ in CURRENCIES]
        tidy(engine)
        floor_s.append(floor_seconds(engine, MARKET_FLOOR, per="ccy", keys=currencies, split=False))
        tidy(engine)
        floor_ccy_s.append(floor_seconds(engine, MARKET_FLOOR, per="ccy", keys=currencies, split=True))

    with engine.begin() as conn:
        conn.execute(sa.delete(t.lending_history).where(t.lending_history.c.ts == 0))
    check, check_s = _ledger_check(engine, size, check_max)
    engine.dispose()
    return _summary(size, "positions", "ccy", settle_s, settle_cpu_s, floor_s, floor_ccy_s,
                    peak_mb, baseline_mb, check, check_s, written_mb)


def _summary(
    size: int, rows: str, part: str, settle_s: list[float], settle_cpu_s: list[float], floor_s: list[float],
    floor_part_s: list[float], peak_mb: float, baseline_mb: float, check: Any, check_s: Any,
    written_mb: list[float],
) -> dict[str, Any]:
    """One result: medians of the rounds, `rows` per second, and the floors whole and per `part`."""
    seconds, floor, floor_part = (statistics.median(samples) for samples in (settle_s, floor_s, floor_part_s))
    return {
        "seconds": round(seconds, 3),
        f"{rows}_per_s": round(size / seconds),
        "peak_mb": round(peak_mb, 1),
        "floor_s": round(floor, 3),
        "ratio": round(seconds / floor, 2),
        f"floor_per_{part}_s": round(floor_part, 3),
        f"ratio_per_{part}": round(seconds / floor_part, 2),
        "settle_cpu_s": round(statistics.median(settle_cpu_s), 3),
        "settle_written_mb": round(statistics.median(written_mb)),
        "baseline_mb": round(baseline_mb, 1),
        "samples": {"settle_s": _rounded(settle_s), "floor_s": _rounded(floor_s),
                    f"floor_per_{part}_s": _rounded(floor_part_s), "settle_written_mb": _rounded(written_mb)},
        "ledger_check": check,
        "ledger_check_s": check_s,
        "settlement_threads": THREADS,
        "load_avg_1m": os.getloadavg()[0],
    }


def _rounded(samples: list[float]) -> list[float]:
    return [round(x, 3) for x in samples]


@dataclass(frozen=True)
class Floor:
    table: str
    amounts: tuple[str, ...]  # rewritten in place: the database really rewrites every row
    insert: str  # INSERT ... SELECT ... FROM table, one row per row of table


MARKET_FLOOR = Floor(
    "savings_position", ("amt", "earnings", "loan"),
    "INSERT INTO lending_history (user_id, position_id, ccy, ts, amt, earnings, rate) "
    "SELECT user_id, id, ccy, 0, loan, earnings, rate FROM savings_position",
)
CATALOG_FLOOR = Floor(
    "earn_holding", ("amount", "accrued", "total_profit", "last_profit"),
    "INSERT INTO earn_order (user_id, product_id, holding_id, order_type, amount, status, ts) "
    "SELECT user_id, product_id, id, 'pay_interest', last_profit, 'success', 0 FROM earn_holding",
)


def _rewritten(column: str, *, postgres: bool) -> str:
    """`column` set to itself so that the database really rewrites it (amounts are text on SQLite)."""
    return f"{column} = {column} + 0" if postgres else f"{column} = {column} || ''"


def _floor_update(floor: Floor, *, postgres: bool) -> str:
    """The floor's UPDATE rewriting its amounts in every row (a `WHERE` may follow)."""
    return f"UPDATE {floor.table} SET " + ", ".join(_rewritten(c, postgres=postgres) for c in floor.amounts)


def floor_seconds(engine: sa.Engine, floor: Floor, *, per: str, keys: Iterable[Any], split: bool) -> float:
    """Rewrite the amounts of every row and write one record row for each, in SQL.

    One UPDATE and one INSERT ... SELECT over all rows in one transaction or, split, one such
    pair and transaction per key (`WHERE per = key`: per currency, per product).
    """
    update = _floor_update(floor, postgres=engine.dialect.name == "postgresql")
    insert = floor.insert
    groups = [f" WHERE {per} = {key}" for key in keys] if split else [""]
    updated = inserted = 0
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
        started = time.perf_counter()
        for where in groups:
            with conn.begin():
                updated += conn.exec_driver_sql(update + where).rowcount
                inserted += conn.exec_driver_sql(insert + where).rowcount
        elapsed = time.perf_counter() - started
    assert updated == inserted, (updated, inserted)
    return elapsed


def ledger_floor_seconds(engine: sa.Engine) -> float:
    """The catalog floor (`CATALOG_FLOOR`, per product) plus the ledger writes paying interest to
    the holders' funding accounts daily takes, in SQL: per product one journal entry, a leg per
    holding to its holder's funding account and one balancing leg from interest expense, and each
    of those funding balances rewritten. One transaction, as `floor_seconds` unsplit, but rolled
    back: journal legs are append-only, so a floor committed could not be undone. On PostgreSQL
    the entries' deferred balance checks run first (SET CONSTRAINTS ALL IMMEDIATE); the commit's
    own flush is not in it, which can only make this floor smaller."""
    postgres = engine.dialect.name == "postgresql"
    update = _floor_update(CATALOG_FLOOR, postgres=postgres)
    balances = "balance = balance + 1" if postgres else _rewritten("balance", postgres=postgres)
    legs = 0
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
        started = time.perf_counter()
        with conn.begin() as transaction:
            for product_id, (coin, _) in enumerate(CURRENCIES, start=1):
                where = f" WHERE product_id = {product_id}"
                conn.exec_driver_sql(update + where)
                conn.exec_driver_sql(CATALOG_FLOOR.insert + where)
                entry = conn.execute(
                    sa.insert(t.journal_entry)
                    .values(ccy=coin, kind="catalog_interest", ref=f"floor:{product_id}", ts=0, created_at=0)
                    .returning(t.journal_entry.c.id)
                ).scalar_one()
                funding = (f"FROM earn_holding h JOIN ledger_account a ON a.user_id = h.user_id "
                           f"AND a.ccy = '{coin}' AND a.kind = 'funding' WHERE h.product_id = {product_id}")
                paid = conn.exec_driver_sql(
                    f"INSERT INTO journal_leg (entry_id, account_id, ccy, amount) "
                    f"SELECT {entry}, a.id, '{coin}', 1 {funding}"
                ).rowcount
                conn.exec_driver_sql(
                    f"INSERT INTO journal_leg (entry_id, account_id, ccy, amount) SELECT {entry}, id, "
                    f"'{coin}', -{paid} FROM ledger_account WHERE key = 'interest_expense:{coin}'"
                )
                conn.exec_driver_sql(
                    f"UPDATE ledger_account SET {balances} WHERE id IN (SELECT a.id {funding})"
                )
                legs += paid
            if postgres:
                conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
            elapsed = time.perf_counter() - started
            transaction.rollback()
    assert legs > 0
    return elapsed


def _written_mb(engine: sa.Engine) -> float:
    """MB written so far: on SQLite by this process (`wchar`: the WAL and checkpoints), on
    PostgreSQL the server's WAL position (every change it makes is written there first; nothing
    else runs on the benchmark's server meanwhile). Unlike seconds, the load of other work on the
    machine leaves it be."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'").scalar_one()) / 1e6
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1]) / 1e6
    return 0.0


def _peak_mb() -> float:
    """The process's RSS high-water mark (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


# --- the driver --------------------------------------------------------------------------------


@contextmanager
def fresh_database(db: str) -> Iterator[str]:
    if db == "sqlite":
        directory = tempfile.mkdtemp(prefix="flexearn-bench-")
        try:
            yield f"sqlite:///{directory}/bench.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"flexearn_bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.make_url(normalise_url(POSTGRES_ADMIN_URL)).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_phase(phase: str, kind: str, url: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--kind", kind, "--url", url, "--size", str(size),
               "--check-max", str(args.check_max), "--repeat", str(args.repeat)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    raise RuntimeError(f"{phase} printed no result:\n{done.stdout}\n{done.stderr}")


def bench(kind: str, db: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(db) as url:
        setup = run_phase("setup", kind, url, size, args)
        measured = run_phase("measure", kind, url, size, args)
    rows = {"positions": size, "currencies": len(CURRENCIES)} if kind == "market" else {
        "holdings": size, "products": len(CURRENCIES)}
    check = measured["ledger_check"].split(" ")[0]  # green, RED or skipped
    return {"kind": kind, "db": db, **rows, **measured, **setup, "check": check.replace("skipped", "-")}


SETUPS = {"market": phase_setup, "catalog": phase_setup_catalog}
MEASURES = {"market": phase_measure, "catalog": phase_measure_catalog}

MARKET_COLUMNS = (
    ("db", "db", "{}"), ("positions", "positions", "{:,}"), ("seconds", "settle s", "{:.2f}"),
    ("positions_per_s", "positions/s", "{:,}"), ("peak_mb", "peak MB", "{:.0f}"),
    ("floor_s", "floor s", "{:.2f}"), ("ratio", "settle/floor", "{:.2f}"),
    ("floor_per_ccy_s", "floor/ccy s", "{:.2f}"), ("ratio_per_ccy", "settle/(floor/ccy)", "{:.2f}"),
    ("settle_cpu_s", "settle CPU s", "{:.2f}"), ("settle_written_mb", "written MB", "{:,}"),
)
CATALOG_COLUMNS = (
    ("db", "db", "{}"), ("holdings", "holdings", "{:,}"), ("seconds", "settle s", "{:.2f}"),
    ("holdings_per_s", "holdings/s", "{:,}"), ("peak_mb", "peak MB", "{:.0f}"),
    ("floor_s", "floor s", "{:.2f}"), ("ratio", "settle/floor", "{:.2f}"),
    ("floor_per_product_s", "floor/product s", "{:.2f}"),
    ("ratio_per_product", "settle/(floor/product)", "{:.2f}"),
    ("floor_with_ledger_s", "floor+ledger s", "{:.2f}"),
    ("ratio_with_ledger", "settle/(floor+ledger)", "{:.2f}"),
    ("settle_cpu_s", "settle CPU s", "{:.2f}"),
    ("settle_written_mb", "written MB", "{:,}"), ("check", "ledger check", "{}"),
)
COLUMNS = {"market": MARKET_COLUMNS, "catalog": CATALOG_COLUMNS}


def table(results: list[dict[str, Any]], columns: tuple[tuple[str, str, str], ...] = MARKET_COLUMNS) -> str:
    rows = [[title for _, title, _ in columns]]
    rows += [[fmt.format(r[key]) for key, _, fmt in columns] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=(*KINDS, "both"), default="both",
                        help="hourly market settlement, daily catalog settlement or both (default)")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="positions/holdings, comma separated")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--check-max", type=int, default=10_000,
                        help="run the full ledger check after settling only up to this size (default 10000)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time this many hours (the same work each) and floors; medians (default 1)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per phase")
    parser.add_argument("--phase", choices=("setup", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        if args.kind not in KINDS:
            parser.error("a phase runs one kind")
        if args.phase == "setup":
            result = SETUPS[args.kind](args.url, args.size)
        else:
            result = MEASURES[args.kind](args.url, args.size, args.check_max, args.repeat)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = set(dbs) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown database {', '.join(sorted(unknown))}")
    kinds = KINDS if args.kind == "both" else (args.kind,)
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for kind in kinds:
        for db in dbs:
            for size in sizes:
                result = bench(kind, db, size, args)
                results[kind].append(result)
                print(json.dumps(result), flush=True)
    for kind in kinds:
        print(f"\n{kind}:")
        print(table(results[kind], COLUMNS[kind]))


if __name__ == "__main__":
    main()
