"""Hourly settlement of the market product, and the scheduler that settles every due hour.

Each (currency, hour) is settled in one transaction: the hour's row in `market_hour` (primary
key: currency, hour) is written in the same transaction as the interest and the new match, so a
settlement either happened completely or not at all, and a second attempt is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour, wall_ms
from flexearn.domain.demand import HourDemand
from flexearn.domain.settlement import (
    HourPlan,
    LastMatch,
    MarketTerms,
    PositionChange,
    PositionRow,
    plan_hour_rows,
)
from flexearn.services import gate
from flexearn.services.markets import MarketSettings, hour_demand, settings_from_row
from flexearn.services.unit_of_work import UnitOfWork


class OutOfOrder(RuntimeError):
    pass


@dataclass(frozen=True)
class SettledHour:
    ccy: str
    hour: int
    demand: Decimal
    borrow_rate: Decimal
    lending_rate: Decimal
    lent: Decimal
    interest_paid: Decimal
    positions_changed: int


@dataclass(frozen=True)
class PlannedHour:
    """An hour's plan, and what it was made from."""

    ccy: str
    hour: int
    places: int
    demand: HourDemand
    last_match: LastMatch | None
    terms: MarketTerms
    positions: list[PositionRow]
    plan: HourPlan

    def figures(self) -> dict[str, Decimal]:
        """The hour's `market_hour` figures."""
        plan, match = self.plan, self.plan.match
        return {
            "demand": self.demand.demand,
            "borrow_rate": match.borrow_rate,
            "lender_rate": match.lender_rate,
            "pool_rate": match.pool_rate,
            "supply": match.supply,
            "lent": match.lent_total,
            "interest_paid": plan.interest_total,
            "insurance_fee": plan.insurance_fee,
            "borrower_paid": plan.borrower_paid,
            "rounding": plan.rounding,
        }


def plan_next(
    conn: sa.Connection, market: MarketSettings, hour: int, *, with_changes: bool = True
) -> PlannedHour | None:
    """The plan of `hour`, which must be the market's next to settle (`OutOfOrder` if it is not
    yet); None if it is settled. Call under the market's settlement lock."""
    ccy = market.ccy
    last = repo.last_settled_hour(conn, ccy)
    expected = market.first_hour if last is None else last + HOUR_MS
    if hour < expected:
        return None
    if hour > expected:
        raise OutOfOrder(f"{ccy}: hour {hour} is due only after {expected}")
    places = repo.currency_precision(conn, ccy)
    previous = repo.market_hour(conn, ccy, hour - HOUR_MS)
    last_match = LastMatch(previous.borrow_rate, previous.lender_rate) if previous else None
    demand = hour_demand(market, hour, previous.demand_state if previous else "", places, conn)
    terms = MarketTerms(market.mode, market.insurance_fee, places)
    positions = repo.positions_for_settlement(conn, ccy)
    plan = plan_hour_rows(
        positions, last_match, terms, demand.demand, demand.borrow_rate, with_changes=with_changes
    )
    return PlannedHour(ccy, hour, places, demand, last_match, terms, positions, plan)


def settle_hour(uow: UnitOfWork, ccy: str, hour: int) -> SettledHour | None:
    """Settle `hour` for `ccy`; None if it was already settled, or is being settled in ranges
    (services/range_settlement.py). Hours settle strictly in order."""
    with uow:
        conn = uow.conn
        market = settings_from_row(repo.market(conn, ccy, lock="update"))
        if gate.open_period(conn, gate.HOUR, ccy) is not None:
            return None
        planned = plan_next(conn, market, hour)
        if planned is None:
            return None
        plan, last_match = planned.plan, planned.last_match
        entry = plan.entry(ccy, ref=f"hour:{hour}")
        entry_id = repo.post(conn, entry, hour) if entry is not None else None
        write_changes(conn, ccy, hour, last_match, plan.changes)
        settled = record_hour(
            conn, ccy, hour, planned.figures(), planned.demand.state, entry_id, len(plan.changes)
        )
        uow.commit()
    return settled


def write_changes(
    conn: sa.Connection, ccy: str, hour: int, last_match: LastMatch | None, changes: Sequence[PositionChange]
) -> None:
    """The positions' new rows, and the history of the hour that ended: what each position lent
    and earned at `last_match`'s rate (none before a currency's first match)."""
    repo.update_positions(conn, [(c.id, c.amt, c.earnings, c.loan) for c in changes], ccy=ccy)
    if last_match is not None:
        repo.insert_lending_history(
            conn,
            ccy,
            hour - HOUR_MS,
            last_match.lender_rate,
            [(c.user_id, c.id, c.lent_last_hour, c.interest) for c in changes if c.lent_last_hour > 0],
        )


def record_hour(
    conn: sa.Connection,
    ccy: str,
    hour: int,
    figures: dict[str, Decimal],
    demand_state: str,
    entry_id: int | None,
    positions_changed: int,
) -> SettledHour:
    """The hour's `market_hour` row: its primary key is what settles each hour exactly once."""
    conn.execute(
        sa.insert(t.market_hour).values(
            ccy=ccy, hour=hour, **figures, demand_state=demand_state, entry_id=entry_id, created_at=wall_ms()
        )
    )
    return SettledHour(
        ccy,
        hour,
        figures["demand"],
        figures["borrow_rate"],
        figures["pool_rate"],
        figures["lent"],
        figures["interest_paid"],
        positions_changed,
    )


def due_hours(uow: UnitOfWork) -> dict[str, list[int]]:
    """Per currency, the hours whose start has passed on the business clock and are unsettled."""
    with uow:
        now_hour = floor_hour(uow.now())
        rows = uow.conn.execute(
            sa.select(t.market.c.ccy, t.market.c.first_hour, sa.func.max(t.market_hour.c.hour))
            .select_from(t.market.outerjoin(t.market_hour, t.market_hour.c.ccy == t.market.c.ccy))
            .group_by(t.market.c.ccy, t.market.c.first_hour)
            .order_by(t.market.c.ccy)
        ).all()
    due: dict[str, list[int]] = {}
    for ccy, first_hour, last in rows:
        start = first_hour if last is None else last + HOUR_MS
        due[ccy] = list(range(start, now_hour + 1, HOUR_MS))
    return due
