"""Ledger checkpoints: what a green ledger check verified, kept so the next check starts there.

A checkpoint is a row of `ledger_checkpoint` (which journal entries and which hours of lending
history its figures hold) and two tables of its own, created with it: each position's `amt` and
`earnings` (`ledger_checkpoint_positions_<id>`) and each account's total (`..._accounts_<id>`).
Figures for a million positions are a million rows; a table per checkpoint makes writing them one
INSERT ... SELECT and dropping a superseded one a DROP TABLE, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, wall_ms

# A journal entry id not visible when a checkpoint is written may belong to a transaction still
# running (ids are taken from a sequence before commit) or to one rolled back. Ids below the last
# entry created this long before are taken as rolled back; those above, as gaps to look at again.
IN_FLIGHT_MS = HOUR_MS

POSITIONS, ACCOUNTS = "ledger_checkpoint_positions_{}", "ledger_checkpoint_accounts_{}"


@dataclass(frozen=True)
class Checkpoint:
    """Figures that hold every journal entry up to `entry_id` but `gaps`, and per currency the
    lending history before `hours[ccy]` (the last hour settled then). `id` None: no figures (zero
    everywhere), i.e. check everything from the start."""

    id: int | None = None
    entry_id: int = 0
    gaps: tuple[int, ...] = ()
    hours: Mapping[str, int] = field(default_factory=dict)

    # Both tables are keyed by their first column, unique as copied from a primary key. The key is
    # indexed after the copy on SQLite, whose check joins through it; PostgreSQL's check hashes
    # the whole table, so it gets statistics instead (see `write`).

    def positions(self) -> sa.Table:
        assert self.id is not None
        return sa.Table(
            POSITIONS.format(self.id),
            sa.MetaData(),
            sa.Column("position_id", sa.BigInteger, nullable=False),
            sa.Column("amt", t.Amount, nullable=False),
            sa.Column("earnings", t.Amount, nullable=False),
        )

    def accounts(self) -> sa.Table:
        assert self.id is not None
        return sa.Table(
            ACCOUNTS.format(self.id),
            sa.MetaData(),
            sa.Column("account_id", sa.BigInteger, nullable=False),
            sa.Column("total", t.Amount, nullable=False),
        )

    def entries_after(self, entry_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
        """Journal entries (by their id column) not in the figures."""
        after = entry_id > self.entry_id
        return sa.or_(after, entry_id.in_(self.gaps)) if self.gaps else after


EMPTY = Checkpoint()


def _loaded(row: Any) -> Checkpoint:  # a row of (id, entry_id, gaps, hours), or None
    if row is None:
        return EMPTY
    gaps = tuple(int(g) for g in row.gaps.split(",") if g)
    return Checkpoint(row.id, row.entry_id, gaps, json.loads(row.hours))


def latest(conn: sa.Connection) -> Checkpoint:
    c = t.ledger_checkpoint
    columns = (c.c.id, c.c.entry_id, c.c.gaps, c.c.hours)
    query = sa.select(*columns).where(c.c.dropped_at.is_(None)).order_by(c.c.id.desc()).limit(1)
    return _loaded(conn.execute(query).first())


def horizon(conn: sa.Connection, name: str) -> tuple[int, Checkpoint] | None:
    """(before, checkpoint) for a history table pruned before `before`, else None."""
    h, c = t.history_horizon, t.ledger_checkpoint
    row = conn.execute(
        sa.select(h.c.before, c.c.id, c.c.entry_id, c.c.gaps, c.c.hours)
        .join(c, c.c.id == h.c.checkpoint_id)
        .where(h.c.name == name)
    ).first()
    return None if row is None else (int(row.before), _loaded(row))


def hour_cuts(conn: sa.Connection) -> dict[str, int]:
    """Per market, the last settled hour (one before the first when none): lending history with
    ts before it is written, none will be."""
    m, hours = t.market, t.market_hour
    rows = conn.execute(
        sa.select(m.c.ccy, m.c.first_hour, sa.func.max(hours.c.hour))
        .select_from(m.outerjoin(hours, hours.c.ccy == m.c.ccy))
        .group_by(m.c.ccy, m.c.first_hour)
    )
    return {ccy: int(last) if last is not None else first - HOUR_MS for ccy, first, last in rows}


def _gaps(conn: sa.Connection, last_id: int) -> tuple[int, ...]:
    e = t.journal_entry
    settled = conn.execute(  # newest first: read back through the last IN_FLIGHT_MS only
        sa.select(e.c.id).where(e.c.created_at < wall_ms() - IN_FLIGHT_MS).order_by(e.c.id.desc()).limit(1)
    ).scalar()
    start = int(settled or 0) + 1
    present = set(conn.execute(sa.select(e.c.id).where(e.c.id >= start, e.c.id <= last_id)).scalars())
    return tuple(i for i in range(start, last_id + 1) if i not in present)


def write(
    conn: sa.Connection, system_totals: Iterable[tuple[int, Decimal]], hours: Mapping[str, int], now: int
) -> int:
    """Record the figures as they stand in this transaction: call only after a green check in it.

    Positions' amounts and user accounts' balances are copied as they are (the check just proved
    them equal to their trails); system accounts, which have no balance column, get `system_totals`.
    """
    e, c = t.journal_entry, t.ledger_checkpoint
    last_id = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(e.c.id), 0))).scalar_one())
    checkpoint_id = int(
        conn.execute(
            sa.insert(c)
            .values(
                entry_id=last_id,
                gaps=",".join(map(str, _gaps(conn, last_id))),
                hours=json.dumps(dict(sorted(hours.items()))),
                positions=0,
                accounts=0,
                business_at=now,
                created_at=wall_ms(),
            )
            .returning(c.c.id)
        ).scalar_one()
    )
    made = Checkpoint(checkpoint_id)
    positions, accounts = made.positions(), made.accounts()
    positions.create(conn)
    accounts.create(conn)
    p, a = t.position, t.account
    copied = conn.execute(
        sa.insert(positions).from_select(
            ["position_id", "amt", "earnings"], sa.select(p.c.id, p.c.amt, p.c.earnings)
        )
    ).rowcount
    users = conn.execute(
        sa.insert(accounts).from_select(
            ["account_id", "total"], sa.select(a.c.id, a.c.balance).where(a.c.balance.is_not(None))
        )
    ).rowcount
    system = [{"account_id": account_id, "total": total} for account_id, total in system_totals]
    if system:
        conn.execute(sa.insert(accounts), system)
    for table in (positions, accounts):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {table.name}")  # a new table has no statistics yet
        else:
            key = table.c[0].name
            conn.exec_driver_sql(f"CREATE UNIQUE INDEX ix_{table.name} ON {table.name} ({key})")
    conn.execute(
        sa.update(c).where(c.c.id == checkpoint_id).values(positions=copied, accounts=users + len(system))
    )
    return checkpoint_id


def drop_superseded(conn: sa.Connection, keep: Iterable[int]) -> list[int]:
    """Drop the figures' tables of every checkpoint but `keep`, as far as no one is reading them.

    A concurrent check may be reading a table: on PostgreSQL the DROP waits for it at most a
    moment, then the checkpoint is left for a later call (each in a savepoint of its own).
    """
    c = t.ledger_checkpoint
    kept = set(keep)
    stale = [
        i
        for i in conn.execute(sa.select(c.c.id).where(c.c.dropped_at.is_(None)).order_by(c.c.id)).scalars()
        if i not in kept
    ]
    if stale and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL lock_timeout = '1s'")
    dropped = []
    for checkpoint_id in stale:
        try:
            with conn.begin_nested():
                for name in (POSITIONS.format(checkpoint_id), ACCOUNTS.format(checkpoint_id)):
                    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
                conn.execute(sa.update(c).where(c.c.id == checkpoint_id).values(dropped_at=wall_ms()))
            dropped.append(checkpoint_id)
        except sa.exc.OperationalError:  # a lock not had in time, or a concurrent drop: later
            continue
    return dropped
