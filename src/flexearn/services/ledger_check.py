"""Re-verify every ledger invariant from the rows (SPEC §4); violations are returned as data.

Sums are exact: PostgreSQL sums NUMERIC in SQL; on SQLite, where amounts are text, the rows are
streamed and summed as Decimals in Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.domain.catalog import DAY_MS
from flexearn.domain.ledger import AccountKind
from flexearn.domain.money import ZERO
from flexearn.services.unit_of_work import UnitOfWork


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


def check(uow: UnitOfWork) -> list[str]:
    with uow:
        control: dict[str, Decimal] = {}
        return [
            *_entry_violations(uow.conn),
            *_account_violations(uow.conn, control),
            *_position_violations(uow.conn, control),
            *_hour_violations(uow.conn),
            *_catalog_violations(uow.conn),
        ]


def _entry_violations(conn: sa.Connection) -> Iterator[str]:
    """Every journal entry balances, in its own currency."""
    leg = t.journal_leg
    for entry_id, total in _sums(conn, leg.c.amount, [leg.c.entry_id], leg).items():
        if total != ZERO:
            yield f"journal entry {entry_id} does not balance: legs sum to {total}"
    mixed = conn.execute(
        sa.select(leg.c.entry_id)
        .join(t.journal_entry, t.journal_entry.c.id == leg.c.entry_id)
        .where(leg.c.ccy != t.journal_entry.c.ccy)
        .limit(10)
    ).scalars()
    for entry_id in mixed:
        yield f"journal entry {entry_id} has a leg in another currency"


def _account_violations(conn: sa.Connection, control: dict[str, Decimal]) -> Iterator[str]:
    """Materialised balances equal their legs and are not negative; fills `control` per currency."""
    leg, account = t.journal_leg, t.account
    by_account = _sums(conn, leg.c.amount, [leg.c.account_id], leg)
    columns = (account.c.id, account.c.key, account.c.kind, account.c.ccy, account.c.balance)
    for row in conn.execute(sa.select(*columns)):
        legs_total = by_account.get(row.id, ZERO)
        kind = AccountKind(row.kind)
        balance = row.balance if kind.user_owned else legs_total
        if kind.user_owned and row.balance != legs_total:
            yield f"account {row.key}: balance {row.balance} but its legs sum to {legs_total}"
        if balance < 0 and not kind.may_go_negative:
            yield f"account {row.key}: negative balance {balance}"
        if kind is AccountKind.SAVINGS:
            control[row.ccy] = legs_total


def _position_violations(conn: sa.Connection, control: dict[str, Decimal]) -> Iterator[str]:
    """Each position equals its trail (purchases − redemptions + interest); their sum, the control."""
    leg, position, history = t.journal_leg, t.position, t.lending_history
    position_legs = _sums(conn, leg.c.amount, [leg.c.position_id], leg, leg.c.position_id.is_not(None))
    position_interest = _sums(conn, history.c.earnings, [history.c.position_id], history)
    held: dict[str, Decimal] = defaultdict(Decimal)
    for row in conn.execute(sa.select(position).execution_options(yield_per=10_000)):
        held[row.ccy] += row.amt
        if min(row.amt, row.loan, row.earnings) < 0 or row.loan > row.amt:
            yield f"position {row.id}: amt {row.amt}, loan {row.loan}, earnings {row.earnings} out of range"
        interest = position_interest.get(row.id, ZERO)
        if row.earnings != interest:
            yield f"position {row.id}: earnings {row.earnings} but lending history pays {interest}"
        trail = position_legs.get(row.id, ZERO) + interest
        if row.amt != trail:
            yield f"position {row.id}: amt {row.amt} but purchases, redemptions and interest give {trail}"
    for ccy in sorted(set(control) | set(held)):
        if control.get(ccy, ZERO) != held[ccy]:
            total = control.get(ccy, ZERO)
            yield f"{ccy}: savings control account {total} differs from the positions' {held[ccy]}"


def _hour_violations(conn: sa.Connection) -> Iterator[str]:
    """Hours settle once (the primary key), in order without gaps, paying what the history says."""
    hours = t.market_hour
    paid_by_hour = _sums(
        conn,
        t.lending_history.c.earnings,
        [t.lending_history.c.ccy, t.lending_history.c.ts],
        t.lending_history,
    )
    first = {
        row.ccy: row.first_hour for row in conn.execute(sa.select(t.market.c.ccy, t.market.c.first_hour))
    }
    expected: dict[str, int] = {}
    for row in conn.execute(
        sa.select(hours.c.ccy, hours.c.hour, hours.c.interest_paid).order_by(hours.c.ccy, hours.c.hour)
    ):
        want = expected.get(row.ccy, first.get(row.ccy, row.hour))
        if row.hour != want:
            yield f"{row.ccy}: hour {row.hour} settled but {want} is missing before it"
        expected[row.ccy] = row.hour + HOUR_MS
        history_paid = paid_by_hour.get((row.ccy, row.hour - HOUR_MS), ZERO)
        if row.interest_paid != history_paid:
            paid = row.interest_paid
            yield f"{row.ccy}: hour {row.hour} paid {paid} but lending history says {history_paid}"


def _catalog_violations(conn: sa.Connection) -> Iterator[str]:
    """Catalog control accounts equal their subsidiaries; each (product, day) settled in order.

    `earn` = open holdings' amounts, `accrued` = their unpaid maturity interest, `redeeming` =
    redemptions still processing (less the interest they took back).
    """
    leg, account, h, o, p = t.journal_leg, t.account, t.holding, t.earn_order, t.product
    controls = _sums(
        conn,
        leg.c.amount,
        [account.c.kind, account.c.ccy],
        leg.join(account, account.c.id == leg.c.account_id),
        account.c.kind.in_([AccountKind.EARN.value, AccountKind.ACCRUED.value, AccountKind.REDEEMING.value]),
    )
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
    for key in sorted(set(controls) | set(expected)):
        if controls.get(key, ZERO) != expected.get(key, ZERO):
            kind, coin = key
            actual = controls.get(key, ZERO)
            yield f"{coin}: {kind} control account {actual} differs from its holdings' {expected[key]}"
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
        want[product_id] = day + DAY_MS
