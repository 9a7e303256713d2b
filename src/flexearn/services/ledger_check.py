"""Re-verify every ledger invariant from the rows (SPEC §4); violations are returned as data.

The invariants: every journal entry balances in its own currency; every materialised balance
equals the sum of its legs and no balance that may not go negative is; each position equals its
trail (its journal legs plus the interest its lending history pays) and the savings control
account equals the sum of the positions; hours and days settle in order, each once.

A check builds on a *checkpoint* (adapters/checkpoints.py): the per-position and per-account
figures a green check verified, in the snapshot it verified. The incremental check (the default)
verifies only the journal entries and lending history after the latest checkpoint, on top of its
figures, and then the global invariants over every position and account as they stand; its cost
follows what happened since, not the whole history. `full` re-verifies the whole journal; only the
per-position interest of lending history already pruned (services/retention.py) comes from the
checkpoint the pruning relied on, since the rows it was verified from are gone. `checkpoint`
writes a new checkpoint after a green check, in the same transaction: REPEATABLE READ on
PostgreSQL (one snapshot for everything read and copied), SQLite's write lock (BEGIN IMMEDIATE).

Sums are exact: PostgreSQL sums NUMERIC in SQL; on SQLite, where amounts are text, the rows are
streamed and summed as Decimals in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import checkpoints, db
from flexearn.adapters import tables as t
from flexearn.adapters.checkpoints import EMPTY, Checkpoint
from flexearn.adapters.clock import HOUR_MS, business_now, ceil_hour
from flexearn.domain.catalog import next_day_start
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO
from flexearn.services.unit_of_work import UnitOfWork

LENDING_HISTORY, RATE_HISTORY = "lending_history", "market_hour"
WORK_MEM = "256MB"  # PostgreSQL, for the check's own transaction


def _sums(
    conn: sa.Connection,
    amount: sa.ColumnElement[Any],
    keys: list[sa.ColumnElement[Any]],
    source: sa.FromClause,
    where: sa.ColumnElement[bool] | None = None,
) -> dict[Any, Decimal]:
    """Exact SUM(amount) GROUP BY keys, as {key or tuple of keys: sum}."""
    single = len(keys) == 1
    if conn.dialect.name == "postgresql":
        query = sa.select(*keys, sa.func.sum(amount)).select_from(source).group_by(*keys)
        if where is not None:
            query = query.where(where)
        return {(row[0] if single else tuple(row[:-1])): row[-1] for row in conn.execute(query)}
    query = sa.select(*keys, amount).select_from(source)
    if where is not None:
        query = query.where(where)
    totals: dict[Any, Decimal] = defaultdict(Decimal)
    for row in conn.execute(query.execution_options(yield_per=10_000)):
        totals[row[0] if single else tuple(row[:-1])] += row[-1]
    return totals


@dataclass(frozen=True)
class Report:
    violations: list[str]
    journal_base: int | None  # the checkpoint whose journal figures were built on; None: none
    history_base: int | None  # the checkpoint whose lending-history figures were built on
    checkpoint: int | None  # the checkpoint written (asked for, and the check green)


def check(uow: UnitOfWork, *, full: bool = False, checkpoint: bool = False) -> list[str]:
    return run(uow.engine, full=full, checkpoint=checkpoint).violations


def run(engine: sa.Engine, *, full: bool = False, checkpoint: bool = False) -> Report:
    postgres = engine.dialect.name == "postgresql"
    options = {"isolation_level": "REPEATABLE READ"} if postgres else {}
    connection = engine.connect().execution_options(**options)
    if not postgres and not checkpoint:  # SQLite: a check that writes nothing reads without the write
        db.read_only(connection)  # lock (PostgreSQL's SHARE lock below needs a read-write transaction)
    with connection as conn, conn.begin():  # commits on the way out
        if postgres:  # before the snapshot is taken: no pruning runs while this check does
            conn.exec_driver_sql("LOCK TABLE history_horizon IN SHARE MODE")
            # the per-position sums of a million positions hash in memory instead of spilling
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
        latest = checkpoints.latest(conn)
        pruned = checkpoints.horizon(conn, LENDING_HISTORY)
        journal = EMPTY if full else latest
        history = (pruned[1] if pruned else EMPTY) if full else latest
        rates = checkpoints.horizon(conn, RATE_HISTORY)
        verified = _Verified(conn, journal, history)
        violations = [
            *verified.entries(),
            *verified.accounts(),
            *verified.positions(),
            *verified.hours(None if rates is None else rates[0]),
            *_catalog_violations(conn, verified.system),
        ]
        written = None
        # Not while a period is being settled in ranges: positions of the ranges applied already
        # would carry interest whose lending history the next check counts again after the cut.
        settling = conn.execute(sa.select(sa.func.count()).select_from(t.settlement_open)).scalar()
        if checkpoint and not violations and not settling:
            totals = [(account_id, total) for (account_id, _kind, _ccy), total in verified.system.items()]
            written = checkpoints.write(conn, totals, verified.cuts, business_now(conn))
            pinned = pruned[1].id if pruned else None  # the base of full checks: kept
            checkpoints.drop_superseded(conn, keep={written} if pinned is None else {written, pinned})
    return Report(violations, journal.id, history.id, written)


@dataclass(frozen=True)
class _Total:
    """A figure per row: the signed columns `figure` of its row in `base` (a checkpoint's table,
    keyed by its first column), plus the sum of `amount` over `source` where `where`, by `key`.

    `single`: there is one such row per key at most, so PostgreSQL joins the rows instead of
    summing them first: one hour of lending history, one row per position lent. (A duplicated row
    would then pass for its position, but not in the hour's total, which `hours` sums.)
    """

    base: sa.Table | None
    figure: tuple[tuple[int, str], ...]
    amount: sa.ColumnElement[Any]
    key: sa.ColumnElement[Any]
    source: sa.FromClause
    where: sa.ColumnElement[bool]
    single: bool = False


class _Verified:
    """One check: the figures of `journal` and `history` plus everything after them."""

    def __init__(self, conn: sa.Connection, journal: Checkpoint, history: Checkpoint) -> None:
        self.conn, self.journal, self.history = conn, journal, history
        self.postgres = conn.dialect.name == "postgresql"
        self.cuts = checkpoints.hour_cuts(conn)  # each market's last settled hour, now
        # Lending history after `history`: per currency from its hour then; a market it does not
        # know, from its first hour (none is older).
        first = {
            ccy: int(hour) for ccy, hour in conn.execute(sa.select(t.market.c.ccy, t.market.c.first_hour))
        }
        self.starts = {ccy: history.hours.get(ccy, first[ccy] - HOUR_MS) for ccy in self.cuts}
        h = t.lending_history
        since = min(self.starts.values(), default=0)  # lets the index (and the partitions) narrow it
        per_ccy = sa.case(self.starts, value=h.c.ccy, else_=0) if self.starts else sa.literal(0)
        self.new_history = sa.and_(h.c.ts >= since, h.c.ts >= per_ccy)
        self.new_legs = journal.entries_after(t.journal_leg.c.entry_id)
        self.system: dict[tuple[int, str, str], Decimal] = {}  # (id, kind, ccy): total

    def entries(self) -> Iterator[str]:
        """Every journal entry after the base balances, in its own currency."""
        leg = t.journal_leg
        for entry_id, total in _sums(self.conn, leg.c.amount, [leg.c.entry_id], leg, self.new_legs).items():
            if total != ZERO:
                yield f"journal entry {entry_id} does not balance: legs sum to {total}"
        mixed = self.conn.execute(
            sa.select(leg.c.entry_id)
            .join(t.journal_entry, t.journal_entry.c.id == leg.c.entry_id)
            .where(leg.c.ccy != t.journal_entry.c.ccy, self.new_legs)
            .limit(10)
        ).scalars()
        for entry_id in mixed:
            yield f"journal entry {entry_id} has a leg in another currency"

    def accounts(self) -> Iterator[str]:
        """Materialised balances equal their legs and are not negative; system totals into `system`."""
        a, leg = t.account, t.journal_leg
        base = None if self.journal.id is None else self.journal.accounts()
        legs = _Total(base, ((1, "total"),), leg.c.amount, leg.c.account_id, leg, self.new_legs)
        rows = self._with_totals(
            sa.select(a.c.id, a.c.key, a.c.kind, a.c.ccy, a.c.balance),
            a.c.id,
            [legs],
            lambda total: sa.or_(a.c.balance.is_(None), a.c.balance != total, a.c.balance < ZERO),
        )
        for row, (total,) in rows:
            kind = AccountKind(row.kind)
            if kind.user_owned and row.balance != total:
                yield f"account {row.key}: balance {row.balance} but its legs sum to {total}"
            balance = row.balance if kind.user_owned else total
            if balance < 0 and not kind.may_go_negative:
                yield f"account {row.key}: negative balance {balance}"
            if not kind.user_owned:
                self.system[(row.id, row.kind, row.ccy)] = total

    def positions(self) -> Iterator[str]:
        """Each position equals its trail (purchases − redemptions + interest); their sum, the control."""
        p, leg, h = t.position, t.journal_leg, t.lending_history
        journal = None if self.journal.id is None else self.journal.positions()
        history = None if self.history.id is None else self.history.positions()
        legs = _Total(
            journal,
            ((1, "amt"), (-1, "earnings")),  # a position's legs were its amount less its interest
            leg.c.amount,
            leg.c.position_id,
            leg,
            sa.and_(leg.c.position_id.is_not(None), self.new_legs),
        )
        one_hour = all(self.cuts[ccy] - start <= HOUR_MS for ccy, start in self.starts.items())
        interest = _Total(
            history, ((1, "earnings"),), h.c.earnings, h.c.position_id, h, self.new_history, one_hour
        )
        rows = self._with_totals(
            sa.select(p.c.id, p.c.amt, p.c.loan, p.c.earnings),
            p.c.id,
            [legs, interest],
            lambda trail, paid: sa.or_(  # with earnings = paid, amt = trail + paid is this:
                p.c.earnings != paid,
                p.c.amt - p.c.earnings != trail,
                p.c.amt < ZERO,
                p.c.loan < ZERO,
                p.c.earnings < ZERO,
                p.c.loan > p.c.amt,
            ),
        )
        for row, (trail, paid) in rows:
            if min(row.amt, row.loan, row.earnings) < 0 or row.loan > row.amt:
                amounts = f"amt {row.amt}, loan {row.loan}, earnings {row.earnings}"
                yield f"position {row.id}: {amounts} out of range"
            if row.earnings != paid:
                yield f"position {row.id}: earnings {row.earnings} but lending history pays {paid}"
            if row.amt != trail + paid:
                got = trail + paid
                yield f"position {row.id}: amt {row.amt} but purchases, redemptions and interest give {got}"
        held = _sums(self.conn, p.c.amt, [p.c.ccy], p)
        control = {
            ccy: total for (_id, kind, ccy), total in self.system.items() if kind == AccountKind.SAVINGS
        }
        for ccy in sorted(set(control) | set(held)):
            if control.get(ccy, ZERO) != held.get(ccy, ZERO):
                total, positions = control.get(ccy, ZERO), held.get(ccy, ZERO)
                yield f"{ccy}: savings control account {total} differs from the positions' {positions}"

    def _with_totals(
        self,
        rows: sa.Select[Any],
        key: sa.ColumnElement[Any],
        totals: list[_Total],
        suspect: Callable[..., sa.ColumnElement[bool]],
    ) -> Iterator[tuple[sa.Row[Any], list[Decimal]]]:
        """Each of `rows` (whose first column is `key`) with its `totals`.

        On PostgreSQL in one query, which returns only the rows `suspect(*totals)` holds for (every
        other row is right); on SQLite, whose amounts are text, the sums are made in Python.
        """
        bases: dict[str, sa.FromClause] = {}
        for total in totals:  # one join per checkpoint table, however many figures come from it
            if total.base is not None and total.base.name not in bases:
                bases[total.base.name] = total.base.alias(f"base{len(bases)}")
                joined = bases[total.base.name]
                rows = rows.outerjoin(joined, joined.c[0] == key)
        if not self.postgres:
            sums = [_sums(self.conn, x.amount, [x.key], x.source, x.where) for x in totals]
            figures = [
                [(sign, bases[x.base.name].c[name].label(f"f{i}_{name}")) for sign, name in x.figure]
                if x.base is not None
                else []
                for i, x in enumerate(totals)
            ]
            query = rows.add_columns(*(column for figure in figures for _, column in figure))
            for row in self.conn.execute(query.execution_options(yield_per=10_000)):
                mapping = row._mapping
                yield (
                    row,
                    [
                        sum((sign * (mapping[c.name] or ZERO) for sign, c in figure), ZERO)
                        + moved.get(row[0], ZERO)
                        for figure, moved in zip(figures, sums, strict=True)
                    ],
                )
            return
        expressions = []
        for i, x in enumerate(totals):
            if x.single:
                rows_after = sa.select(x.key.label("key"), x.amount.label("total")).where(x.where)
            else:
                summed = sa.select(x.key.label("key"), sa.func.sum(x.amount).label("total"))
                rows_after = summed.select_from(x.source).where(x.where).group_by(x.key)
            moved = rows_after.subquery(f"moved{i}")
            rows = rows.outerjoin(moved, moved.c.key == key)
            expression: sa.ColumnElement[Any] = sa.func.coalesce(moved.c.total, ZERO)
            if x.base is not None:
                base = bases[x.base.name]
                for sign, name in x.figure:
                    figure = sa.func.coalesce(base.c[name], ZERO)
                    expression = expression + figure if sign > 0 else expression - figure
            expressions.append(expression)
        query = rows.add_columns(*(e.label(f"total{i}") for i, e in enumerate(expressions)))
        query = query.where(suspect(*expressions))
        for row in self.conn.execute(query.execution_options(yield_per=10_000)):
            yield row, [row._mapping[f"total{i}"] for i in range(len(totals))]

    def hours(self, rates_before: int | None) -> Iterator[str]:
        """Hours settle once (the primary key), in order without gaps, paying what the history says.

        Rate history before `rates_before` may have been pruned: a currency's first row then needs
        only to be no later than the first hour after it. Each hour after the history base pays
        what the lending history of the hour before says.
        """
        hours, h = t.market_hour, t.lending_history
        paid_by_hour = _sums(self.conn, h.c.earnings, [h.c.ccy, h.c.ts], h, self.new_history)
        first = {
            row.ccy: row.first_hour
            for row in self.conn.execute(sa.select(t.market.c.ccy, t.market.c.first_hour))
        }
        expected: dict[str, int] = {}
        rows = self.conn.execute(
            sa.select(hours.c.ccy, hours.c.hour, hours.c.interest_paid).order_by(hours.c.ccy, hours.c.hour)
        )
        for row in rows:
            start = first.get(row.ccy, row.hour)
            if row.ccy in expected:
                want = expected[row.ccy]
            elif rates_before is not None and start <= row.hour <= max(start, ceil_hour(rates_before)):
                want = row.hour  # the hours before were pruned
            else:
                want = start
            if row.hour != want:
                yield f"{row.ccy}: hour {row.hour} settled but {want} is missing before it"
            expected[row.ccy] = row.hour + HOUR_MS
            if row.hour - HOUR_MS < self.starts.get(row.ccy, row.hour):
                continue  # what it paid is in the base's figures (and its rows may be pruned)
            history_paid = paid_by_hour.get((row.ccy, row.hour - HOUR_MS), ZERO)
            if row.interest_paid != history_paid:
                paid = row.interest_paid
                yield f"{row.ccy}: hour {row.hour} paid {paid} but lending history says {history_paid}"


def _catalog_violations(conn: sa.Connection, system: Mapping[tuple[int, str, str], Decimal]) -> Iterator[str]:
    """Catalog control accounts equal their subsidiaries; each (product, day) settled in order.

    `earn` = open holdings' amounts, `accrued` = their unpaid maturity interest, `redeeming` =
    redemptions still processing (less the interest they took back). The control accounts' totals
    are those the account check found (`system`: (id, kind, ccy) -> total).
    """
    h, o, p = t.holding, t.earn_order, t.product
    kinds = (AccountKind.EARN.value, AccountKind.ACCRUED.value, AccountKind.REDEEMING.value)
    controls: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (_id, kind, ccy), total in system.items():
        if kind in kinds:
            controls[(kind, ccy)] += total
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in conn.execute(sa.select(p.c.coin, h.c.amount, h.c.accrued).join(p, p.c.id == h.c.product_id)):
        expected[(AccountKind.EARN.value, row.coin)] += row.amount
        expected[(AccountKind.ACCRUED.value, row.coin)] += row.accrued
        if row.amount < 0 or row.accrued < 0:
            yield f"catalog holding of {row.coin} out of range: amount {row.amount}, accrued {row.accrued}"
    deductions = {
        (r.holding_id, r.ts): r.amount
        for r in conn.execute(
            sa.select(o.c.holding_id, o.c.ts, o.c.amount).where(o.c.order_type == "deduction")
        )
    }
    pending = conn.execute(
        sa.select(p.c.coin, o.c.holding_id, o.c.ts, o.c.amount)
        .join(p, p.c.id == o.c.product_id)
        .where(o.c.order_type == "redeem", o.c.status == "processing")
    )
    for redemption in pending:
        expected[(AccountKind.REDEEMING.value, redemption.coin)] += redemption.amount - deductions.get(
            (redemption.holding_id, redemption.ts), ZERO
        )
    for key in sorted(
        k for k in set(controls) | set(expected) if controls.get(k, ZERO) != expected.get(k, ZERO)
    ):
        kind, coin = key
        actual = controls.get(key, ZERO)
        yield f"{coin}: {kind} control account {actual} differs from its holdings' {expected.get(key, ZERO)}"
    firsts = {row.id: row.first_day for row in conn.execute(sa.select(p.c.id, p.c.first_day))}
    days = conn.execute(
        sa.select(t.product_day.c.product_id, t.product_day.c.day).order_by(
            t.product_day.c.product_id, t.product_day.c.day
        )
    )
    want: dict[int, int] = {}
    for product_id, day in days:
        expected_day = want.get(product_id, firsts.get(product_id, day))
        if day != expected_day:
            yield f"product {product_id}: day {day} settled but {expected_day} is missing before it"
        want[product_id] = next_day_start(day)
