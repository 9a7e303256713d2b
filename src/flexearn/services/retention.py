"""History retention: lending history for the month the API promises, rate history as the operator sets.

`lending_history` (a row per position per hour) is by far the largest table. On PostgreSQL it is
partitioned by day of `ts` (migration 0006): `prune` drops whole days older than the retention
period (DROP TABLE: no row-by-row delete, no vacuum debt) and creates the days ahead; a DEFAULT
partition takes rows of a day not created yet (a worker down for a week, a simulated clock
racing ahead), and they are moved into their day's partition on the next run. On SQLite old rows
are deleted in batches. `market_hour` (the rate history, one row per currency and hour, 88 k rows a
year for ten currencies) stays one table on both: deleting its old rows costs milliseconds, and
its primary key (ccy, hour) keeps making each hour settle once.

Pruning never drops what the ledger check still needs: the latest ledger checkpoint must hold the
figures of everything pruned (else `PruneRefused`), and it becomes the base from which a full
check takes the pruned rows' part (`history_horizon`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from flexearn.adapters import checkpoints
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.config import Settings
from flexearn.domain.catalog import DAY_MS
from flexearn.services import ledger_check
from flexearn.services.ledger_check import LENDING_HISTORY, RATE_HISTORY
from flexearn.services.unit_of_work import UnitOfWork

PROMISED_DAYS = 30  # OKX's lending-history endpoint answers the last month
AHEAD_DAYS = 7  # partitions made ahead of business time
BATCH = 10_000  # rows per DELETE (SQLite, and the PostgreSQL default partition)
LOCK_TIMEOUT = "10s"  # how long pruning waits for a table lock before giving up until next time
PARTITION = re.compile(r"^lending_history_d(\d{8})$")
log = logging.getLogger("flexearn.retention")


class PruneRefused(RuntimeError):
    """Pruning would drop history that no ledger checkpoint holds the figures of."""


@dataclass(frozen=True)
class Retention:
    """Days of history kept; 0 keeps it forever."""

    lending_history_days: int = PROMISED_DAYS
    rate_history_days: int = 0

    def __post_init__(self) -> None:
        if self.lending_history_days and self.lending_history_days < PROMISED_DAYS:
            raise ValueError(
                f"lending history is kept at least {PROMISED_DAYS} days (the API promises a month)"
            )
        if self.lending_history_days < 0 or self.rate_history_days < 0:
            raise ValueError("days of history are 0 (forever) or more")

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(settings.lending_history_days, settings.rate_history_days)


@dataclass(frozen=True)
class Pruned:
    checkpoint: int | None  # the ledger checkpoint relied on
    lending_before: int | None  # lending history before this (business ms) is gone
    rate_before: int | None  # rate history before this is gone
    lending_rows: int = 0  # deleted row by row (SQLite; PostgreSQL's default partition)
    rate_rows: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_created: list[str] = field(default_factory=list)
    checkpoints_dropped: list[int] = field(default_factory=list)


def partition_name(day: int) -> str:
    """The partition of the UTC day starting at `day` (ms)."""
    return "lending_history_d" + datetime.fromtimestamp(day / 1000, UTC).strftime("%Y%m%d")


def _day_of(name: str) -> int | None:
    found = PARTITION.match(name)
    if not found:
        return None
    return int(datetime.strptime(found.group(1), "%Y%m%d").replace(tzinfo=UTC).timestamp() * 1000)


def partitions(conn: sa.Connection) -> dict[int, str]:
    """PostgreSQL: the day partitions of `lending_history`, by the day they start."""
    names = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'lending_history'::regclass"
    ).scalars()
    days = {_day_of(name): name for name in names}
    return {day: name for day, name in days.items() if day is not None}


def ensure_partitions(engine: sa.Engine, now: int, ahead_days: int = AHEAD_DAYS) -> list[str]:
    """PostgreSQL: a partition for yesterday, today and `ahead_days` days ahead (business time), and
    one for each day that has rows in the default partition, those rows moved into it.

    Each is made as a table of its own, filled, then attached: attaching locks the parent only
    against other schema changes, so settlement and the API go on meanwhile.
    """
    if engine.dialect.name != "postgresql":
        return []
    today = now - now % DAY_MS
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        have = partitions(conn)
        stray = conn.exec_driver_sql(
            "SELECT DISTINCT ts / 86400000 * 86400000 FROM lending_history_default WHERE ts >= 0"
        ).scalars()
        wanted = {*range(today - DAY_MS, today + (ahead_days + 1) * DAY_MS, DAY_MS), *map(int, stray)}
        made = []
        for day in sorted(wanted - set(have)):
            name, end = partition_name(day), day + DAY_MS
            conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE lending_history)")
            conn.exec_driver_sql(
                f"WITH moved AS (DELETE FROM lending_history_default WHERE ts >= {day} AND ts < {end} "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            )
            conn.exec_driver_sql(
                f"ALTER TABLE lending_history ATTACH PARTITION {name} FOR VALUES FROM ({day}) TO ({end})"
            )
            made.append(name)
    return made


def prune(engine: sa.Engine, retention: Retention, now: int) -> Pruned:
    """Drop history past `retention` at business time `now`, behind the latest ledger checkpoint.

    Raises `PruneRefused` when that checkpoint does not hold every currency's history up to the
    horizon (none written yet, a market newer than it): run `flexearn ledger check --checkpoint`.
    """
    created = ensure_partitions(engine, now)
    lending_before = now - retention.lending_history_days * DAY_MS if retention.lending_history_days else None
    rate_before = now - retention.rate_history_days * DAY_MS if retention.rate_history_days else None
    if lending_before is None and rate_before is None:
        return Pruned(None, None, None, partitions_created=created)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:  # waits for running ledger checks, and holds new ones until done
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.exec_driver_sql("LOCK TABLE history_horizon IN EXCLUSIVE MODE")
        base = _covering(conn, max(b for b in (lending_before, rate_before) if b is not None))
        assert base.id is not None
        for name, before in ((LENDING_HISTORY, lending_before), (RATE_HISTORY, rate_before)):
            if before is not None:
                _record(conn, name, before, base.id)
        dropped: list[str] = []
        lending_rows = rate_rows = 0
        if postgres:  # all in this transaction: quick (whole partitions, a small default one)
            if lending_before is not None:
                dropped = _drop_partitions(conn, lending_before)
                lending_rows = _delete(conn, "lending_history_default", "ts", lending_before)
            if rate_before is not None:
                rate_rows = _delete(conn, "market_hour", "hour", rate_before)
        stale = checkpoints.drop_superseded(conn, keep={base.id})
    if not postgres:  # after the horizon is recorded, in batches: writers wait for one batch at most
        if lending_before is not None:
            lending_rows = _delete_in_batches(engine, "lending_history", "ts", lending_before)
        if rate_before is not None:
            rate_rows = _delete_in_batches(engine, "market_hour", "hour", rate_before)
    return Pruned(base.id, lending_before, rate_before, lending_rows, rate_rows, dropped, created, stale)


def _covering(conn: sa.Connection, before: int) -> checkpoints.Checkpoint:
    """The latest checkpoint, if it holds every market's history before `before`."""
    latest = checkpoints.latest(conn)
    if latest.id is None:
        raise PruneRefused("no ledger checkpoint yet: run `flexearn ledger check --checkpoint` first")
    markets = conn.execute(sa.select(t.market.c.ccy)).scalars().all()
    short = sorted(ccy for ccy in markets if latest.hours.get(ccy, before - 1) < before)
    if short:
        raise PruneRefused(
            f"ledger checkpoint {latest.id} does not hold the history of {', '.join(short)} "
            f"before {before}: run `flexearn ledger check --checkpoint` first"
        )
    return latest


def _record(conn: sa.Connection, name: str, before: int, checkpoint_id: int) -> None:
    """Note that `name` may lack rows before `before`, whose figures `checkpoint_id` holds. The
    horizon never moves back (a longer retention set later cannot bring pruned rows back)."""
    h = t.history_horizon
    known = conn.execute(sa.select(h.c.before).where(h.c.name == name)).scalar()
    values = {"before": max(before, known or before), "checkpoint_id": checkpoint_id, "pruned_at": wall_ms()}
    if known is None:
        conn.execute(sa.insert(h).values(name=name, **values))
    else:
        conn.execute(sa.update(h).where(h.c.name == name).values(**values))


def _drop_partitions(conn: sa.Connection, before: int) -> list[str]:
    """Drop the day partitions that end at or before `before`."""
    dropped = []
    for day, name in sorted(partitions(conn).items()):
        if day + DAY_MS <= before:
            conn.exec_driver_sql(f"DROP TABLE {name}")
            dropped.append(name)
    return dropped


def _delete(conn: sa.Connection, table: str, column: str, before: int) -> int:
    return int(conn.exec_driver_sql(f"DELETE FROM {table} WHERE {column} < {int(before)}").rowcount)


def _delete_in_batches(engine: sa.Engine, table: str, column: str, before: int) -> int:
    """DELETE rows with `column` < `before`, BATCH at a time, each batch its own transaction."""
    key = "id" if table == "lending_history" else "rowid"
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.exec_driver_sql(
                f"DELETE FROM {table} WHERE {key} IN "
                f"(SELECT {key} FROM {table} WHERE {column} < {int(before)} LIMIT {BATCH})"
            ).rowcount
        deleted += count
        if count < BATCH:
            return deleted


@dataclass(frozen=True)
class Maintained:
    check: ledger_check.Report
    pruned: Pruned | None  # None: the ledger was red, or pruning was refused


def after_settlement(retention: Retention) -> Callable[[sa.Engine], Maintained]:
    """The worker's job after each settlement pass: the incremental ledger check, writing a
    checkpoint when green (so the next one starts there), then pruning behind it.

    A red ledger is logged at ERROR with its violations and nothing is pruned.
    """

    def maintain(engine: sa.Engine) -> Maintained:
        report = ledger_check.run(engine, checkpoint=True)
        if report.violations:
            log.error(
                "ledger check failed: %d violation(s)",
                len(report.violations),
                extra={"violations": report.violations[:20]},
            )
            return Maintained(report, None)
        with UnitOfWork(engine) as uow:
            now = uow.now()
        try:
            pruned = prune(engine, retention, now)
        except PruneRefused as refused:
            log.warning("history not pruned: %s", refused)
            return Maintained(report, None)
        return Maintained(report, pruned)

    return maintain
