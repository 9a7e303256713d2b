"""A market's hour as a period kind (`HOURS`; key: the currency).

At hour H: interest for [H−1, H) on each position's loan, compounded into it, then the match for
[H, H+1) (`domain.settlement`). The plan is the match over every position, kept while the hour
is open as an `OpenHour` (its `LendingRule` lets a range of positions settle alone); the ranges
book their interest (borrowers → savings), the close the rest (insurance fund, rounding) and the
`market_hour` row, whose primary key (currency, hour) settles each hour exactly once. Settled in
one transaction, the hour's ledger is one entry (`HourPlan.entry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour, wall_ms
from flexearn.domain.money import ZERO
from flexearn.domain.settlement import (
    HourFigures,
    HourPlan,
    LastMatch,
    LendingRule,
    MarketTerms,
    OpenHour,
    PositionChange,
    hour_entry,
    plan_hour_rows,
    plan_range_rows,
    range_entry,
)
from flexearn.services import gate
from flexearn.services.markets import hour_demand, settings_from_row
from flexearn.services.settlement.period import Applied, Part, RangesDisagree, Schedule, due
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
    """An hour's plan: the open plan, the user ids of its positions (to cut ranges by) and — made
    in the transaction that settles it whole — its changes (then no user ids: no ranges)."""

    open: OpenHour
    user_ids: Sequence[int] = ()
    whole: HourPlan | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return self.open.to_json()


class Hours:
    name = gate.HOUR
    schedule = Schedule(
        t.market.c.ccy,
        t.market.c.first_hour,
        t.market_hour.c.ccy,
        t.market_hour.c.hour,
        after=lambda hour: hour + HOUR_MS,
        step=HOUR_MS,
        started_by=floor_hour,
        lane=t.market.c.ccy,  # an hour locks its currency's rows and system accounts only
    )

    def lock(self, conn: sa.Connection, key: str) -> None:
        repo.market(conn, key, lock="update")

    def plan(self, conn: sa.Connection, key: str, period: int, *, whole: bool) -> PlannedHour | None:
        """The plan of `period` (an hour), which must be the market's next to settle (`OutOfOrder`
        if it is not yet); None if it is settled. Call under the market's settlement lock."""
        ccy, hour = key, period
        market = settings_from_row(repo.market(conn, ccy))
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
            positions, last_match, terms, demand.demand, demand.borrow_rate, with_changes=whole
        )
        rule = (  # settled whole, the plan's own changes are applied: no rule needed
            LendingRule(terms.mode, ZERO) if whole else LendingRule.of(plan, positions, terms, demand.demand)
        )
        figures = HourFigures.of(plan, demand.demand)
        open_ = OpenHour(places, last_match, rule, figures, demand.state)
        return PlannedHour(open_, whole=plan) if whole else PlannedHour(open_, [p.user_id for p in positions])

    def restore(self, raw: Mapping[str, Any]) -> PlannedHour:
        return PlannedHour(OpenHour.from_json(raw))

    def apply(self, conn: sa.Connection, key: str, period: int, plan: PlannedHour, part: Part) -> Applied:
        """The hour's changes to the positions of `part`'s users, their history rows and (in a
        range) the range's interest entry."""
        ccy, hour, open_ = key, period, plan.open
        if plan.whole is not None:
            changes, interest, lent = (
                plan.whole.changes,
                plan.whole.interest_total,
                plan.whole.match.lent_total,
            )
        else:
            positions = repo.positions_for_settlement(conn, ccy, users=(part.lo, part.hi))
            ranged = plan_range_rows(positions, open_.last, open_.places, open_.rule)
            changes, interest, lent = ranged.changes, ranged.interest_total, ranged.lent_total
            entry = range_entry(ccy, f"hour:{hour}{part.ref_suffix}", interest)
            if entry is not None:
                repo.post(conn, entry, hour)
        write_changes(conn, ccy, hour, open_.last, changes)
        return Applied(len(changes), interest, lent)

    def close(
        self,
        conn: sa.Connection,
        key: str,
        period: int,
        plan: PlannedHour,
        applied: Sequence[Applied],
        *,
        whole: bool,
    ) -> SettledHour:
        """Check the parts against the plan, book what is left of the hour (all of it, settled
        whole), write the `market_hour` row."""
        ccy, hour, figures = key, period, plan.open.figures
        interest = sum((a.interest for a in applied), ZERO)
        lent = sum((a.lent for a in applied), ZERO)
        if interest != figures.interest_paid or lent != figures.lent:
            raise RangesDisagree(
                f"{ccy} hour {hour}: ranges paid {interest} and lent {lent}, "
                f"the plan {figures.interest_paid} and {figures.lent}"
            )
        rest = hour_entry(
            ccy, f"hour:{hour}", interest if whole else ZERO, figures.insurance_fee, figures.rounding
        )
        entry_id = None if rest is None else repo.post(conn, rest, hour)
        changed = sum(a.items for a in applied)
        conn.execute(
            sa.insert(t.market_hour).values(
                ccy=ccy,
                hour=hour,
                **figures.columns(),
                demand_state=plan.open.demand_state,
                entry_id=entry_id,
                created_at=wall_ms(),
            )
        )
        return SettledHour(
            ccy,
            hour,
            figures.demand,
            figures.borrow_rate,
            figures.pool_rate,
            figures.lent,
            figures.interest_paid,
            changed,
        )


HOURS = Hours()


def write_changes(
    conn: sa.Connection, ccy: str, hour: int, last_match: LastMatch | None, changes: Sequence[PositionChange]
) -> None:
    """The positions' new rows, and the history of the hour that ended: what each position lent
    and earned at `last_match`'s rate (none before a currency's first match)."""
    repo.update_positions(conn, list(map(_POSITION_AMOUNTS, changes)), ccy=ccy)
    if last_match is not None:
        lent = map(_HISTORY, [c for c in changes if c.lent_last_hour > 0])
        repo.insert_lending_history(conn, ccy, hour - HOUR_MS, last_match.lender_rate, lent)


def _fields(*names: str) -> itemgetter[Any]:
    """The named fields of a `PositionChange`, as a tuple (in C: an hour makes one per position)."""
    return itemgetter(*map(PositionChange._fields.index, names))


_POSITION_AMOUNTS = _fields("id", "amt", "earnings", "loan")  # update_positions' rows
_HISTORY = _fields("user_id", "id", "lent_last_hour", "interest")  # insert_lending_history's rows


def due_hours(uow: UnitOfWork) -> dict[str, list[int]]:
    """Per currency, the hours whose start has passed on the business clock and are unsettled."""
    return due(uow, HOURS)
