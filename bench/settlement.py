"""Benchmark of hourly settlement (interest + matching + records) against the bare SQL floor.

    python bench/settlement.py [--sizes 10000,100000,1000000] [--db sqlite,postgresql]
                               [--repeat 1] [--check-max 10000]

For every database and size: a fresh database (a SQLite file in a temp dir, or a new PostgreSQL
database, dropped afterwards) is filled with `size` savings positions spread evenly over 10
currencies (size / 10 users, each holding one position in every currency, rows interleaved as
users would create them), booked in the ledger: one seed entry per currency moving the money
from `external` into the savings control account, with one savings leg per position, so the
ledger check holds.

Hour 1 is settled untimed (it only matches: every market's static demand exceeds its supply, so
everything is lent). Hour 2 is timed: interest is paid on every position, every position is
re-matched and gets a lending history row. That is `settle_hour` for the 10 currencies, one
transaction each, as the scheduler runs it.

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
loading. Output: a JSON line per result as it finishes, then a table.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, migrate, normalise_url
from flexearn.domain.money import plain
from flexearn.services import ledger_check, settlement
from flexearn.services.unit_of_work import UnitOfWork

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
        position_cols = "id, user_id, ccy, amt, loan, earnings, rate, rate_seq, rate_set_at"
        leg_cols = "entry_id, account_id, ccy, amount, position_id"
        if postgres:
            _copy(conn, "user_account (id, name, level, created_at)", data.users)
            _copy(conn, f"savings_position ({position_cols})", data.positions)
            _copy(conn, f"journal_leg ({leg_cols})", legs)
            for table in ("user_account", "savings_position"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
        else:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany("INSERT INTO user_account (id, name, level, created_at) VALUES (?, ?, ?, ?)",
                               data.users)
            cursor.executemany(
                f"INSERT INTO savings_position ({position_cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                data.positions,
            )
            cursor.executemany(f"INSERT INTO journal_leg ({leg_cols}) VALUES (?, ?, ?, ?, ?)", legs)
            cursor.close()


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
    changed = 0
    for ccy, _ in CURRENCIES:
        result = settlement.settle_hour(UnitOfWork(engine), ccy, hour)
        assert result is not None
        changed += result.positions_changed
    return changed


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


def phase_measure(url: str, size: int, check_max: int, repeat: int) -> dict[str, Any]:
    """Settle hours 2, 3, ... (each the same work: interest on all, all re-matched) and the floors.

    Each round: settle one hour, then the floor (one UPDATE + one INSERT ... SELECT over all
    positions, one transaction), then the same floor per currency (ten transactions, as
    settlement runs). Medians are reported. The floors' history rows are written at ts = 0 and
    deleted before the ledger check.
    """
    engine = make_engine(url)
    with engine.connect() as conn:  # open the pooled connection outside the timing
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
    baseline_mb = _peak_mb()
    settle_s, settle_cpu_s, floor_s, floor_ccy_s = [], [], [], []
    for round_ in range(repeat):
        hour = HOUR2 + round_ * HOUR_MS
        tidy(engine)
        cpu, started = time.process_time(), time.perf_counter()
        changed = settle_all(engine, hour)
        settle_s.append(time.perf_counter() - started)
        settle_cpu_s.append(time.process_time() - cpu)
        with engine.connect() as conn:
            history = conn.execute(
                sa.select(sa.func.count()).select_from(t.lending_history)
                .where(t.lending_history.c.ts == hour - HOUR_MS)
            ).scalar_one()
        assert changed == size, f"hour {round_ + 2} changed {changed} of {size} positions"
        assert history == size, f"hour {round_ + 2} wrote {history} history rows for {size} positions"
        peak_mb = _peak_mb()
        tidy(engine)
        floor_s.append(floor_seconds(engine, per_currency=False))
        tidy(engine)
        floor_ccy_s.append(floor_seconds(engine, per_currency=True))

    with engine.begin() as conn:
        conn.execute(sa.delete(t.lending_history).where(t.lending_history.c.ts == 0))
    if size <= check_max:
        check_started = time.perf_counter()
        violations = ledger_check.check(UnitOfWork(engine))
        check = "green" if not violations else f"RED ({len(violations)}: {violations[:3]})"
        check_s: float | None = round(time.perf_counter() - check_started, 3)
    else:
        check, check_s = f"skipped (size > --check-max {check_max})", None
    engine.dispose()
    seconds, floor, floor_ccy = (statistics.median(samples) for samples in (settle_s, floor_s, floor_ccy_s))
    return {
        "seconds": round(seconds, 3),
        "positions_per_s": round(size / seconds),
        "peak_mb": round(peak_mb, 1),
        "floor_s": round(floor, 3),
        "ratio": round(seconds / floor, 2),
        "floor_per_ccy_s": round(floor_ccy, 3),
        "ratio_per_ccy": round(seconds / floor_ccy, 2),
        "settle_cpu_s": round(statistics.median(settle_cpu_s), 3),
        "baseline_mb": round(baseline_mb, 1),
        "samples": {"settle_s": _rounded(settle_s), "floor_s": _rounded(floor_s),
                    "floor_per_ccy_s": _rounded(floor_ccy_s)},
        "ledger_check": check,
        "ledger_check_s": check_s,
        "load_avg_1m": os.getloadavg()[0],
    }


def _rounded(samples: list[float]) -> list[float]:
    return [round(x, 3) for x in samples]


def floor_seconds(engine: sa.Engine, *, per_currency: bool) -> float:
    """Rewrite amt, earnings and loan of every position and write a history row for each, in SQL.

    One UPDATE and one INSERT ... SELECT over all positions in one transaction or, per_currency,
    one such pair and transaction per currency.
    """
    if engine.dialect.name == "postgresql":
        rewrite = "amt = amt + 0, earnings = earnings + 0, loan = loan + 0"
    else:  # amounts are text on SQLite
        rewrite = "amt = amt || '', earnings = earnings || '', loan = loan || ''"
    update = f"UPDATE savings_position SET {rewrite}"
    insert = ("INSERT INTO lending_history (user_id, position_id, ccy, ts, amt, earnings, rate) "
              "SELECT user_id, id, ccy, 0, loan, earnings, rate FROM savings_position")
    groups = [f" WHERE ccy = '{ccy}'" for ccy, _ in CURRENCIES] if per_currency else [""]
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


def run_phase(phase: str, url: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--url", url, "--size", str(size),
               "--check-max", str(args.check_max), "--repeat", str(args.repeat)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX):])
            return result
    raise RuntimeError(f"{phase} printed no result:\n{done.stdout}\n{done.stderr}")


def bench(db: str, size: int, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(db) as url:
        setup = run_phase("setup", url, size, args)
        measured = run_phase("measure", url, size, args)
    return {"db": db, "positions": size, "currencies": len(CURRENCIES), **measured, **setup}


COLUMNS = (
    ("db", "db", "{}"), ("positions", "positions", "{:,}"), ("seconds", "settle s", "{:.2f}"),
    ("positions_per_s", "positions/s", "{:,}"), ("peak_mb", "peak MB", "{:.0f}"),
    ("floor_s", "floor s", "{:.2f}"), ("ratio", "settle/floor", "{:.2f}"),
    ("floor_per_ccy_s", "floor/ccy s", "{:.2f}"), ("ratio_per_ccy", "settle/(floor/ccy)", "{:.2f}"),
)


def table(results: list[dict[str, Any]]) -> str:
    rows = [[title for _, title, _ in COLUMNS]]
    rows += [[fmt.format(r[key]) for key, _, fmt in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="positions, comma separated")
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
        if args.phase == "setup":
            result = phase_setup(args.url, args.size)
        else:
            result = phase_measure(args.url, args.size, args.check_max, args.repeat)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    unknown = set(dbs) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown database {', '.join(sorted(unknown))}")
    results = []
    for db in dbs:
        for size in sizes:
            result = bench(db, size, args)
            results.append(result)
            print(json.dumps(result), flush=True)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
