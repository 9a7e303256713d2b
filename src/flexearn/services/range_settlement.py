"""One period's settlement shared by several workers, by range of user ids.

A period — a market's hour, a catalog product's day — settled in N ranges goes through three
kinds of transaction, each of which any worker may run:

1. **open** (under the market's or product's lock): the period's order is checked as in the
   single-transaction settlement; for an hour, the match is computed over every position (read,
   not written) and reduced to a `LendingRule` plus the hour's figures; a day needs nothing
   global. The plan is written to `settlement_open` and N rows to `settlement_range`, each a range
   of user ids (the first from none, the last to none: every user is in exactly one). From then
   on, trading in that currency or product waits (`gate`), so the positions the plan was made on
   do not change until the period closes.
2. **apply a range** (`apply_next`): claim an unapplied range (`FOR UPDATE SKIP LOCKED`), apply the
   plan to the positions or holdings of its users — interest, compounding, new loans, lending
   history, orders, expiries — with one journal entry for the range (borrowers → the savings
   control account for an hour; interest expense → the holdings' control or the users' funding for
   a day), and mark the range applied in the same transaction: each range applies exactly once.
3. **close** (under the lock, once every range is applied): check the ranges' sums against the
   plan, book the rest of the hour (borrowers → insurance fund and rounding), write the
   `market_hour` / `product_day` row — the period's exactly-once key, as in a single-transaction
   settlement — and delete the open rows.

A worker dying at any point leaves a period not opened (nothing written), open with ranges left
(applied by whoever comes next, then closed), or closed. The result is the single transaction's,
position for position (`tests/integration/test_range_settlement.py`); the journal differs only in
splitting the period's entry into one per range and one at close.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.ledger import AccountKind, AccountRef, Leg, compound
from flexearn.domain.money import ZERO
from flexearn.domain.settlement import LastMatch, LendingRule, plan_range_rows
from flexearn.services import catalog_settlement, settlement
from flexearn.services.catalog import load_product
from flexearn.services.gate import DAY, HOUR
from flexearn.services.markets import settings_from_row
from flexearn.services.unit_of_work import UnitOfWork

log = logging.getLogger("flexearn.settlement")

Bounds = tuple[int | None, int | None]


class RangesDisagree(RuntimeError):
    """The applied ranges do not add up to the plan: positions changed under an open period."""


# --- ranges --------------------------------------------------------------------------------------


def split(user_ids: Iterable[int], ranges: int) -> list[Bounds]:
    """`ranges` ranges of user ids cut evenly over the span of `user_ids`; the first is open below,
    the last above, so that every user id — also one that appears later — is in exactly one."""
    ids = list(user_ids)
    if ranges <= 1 or not ids:
        return [(None, None)]
    low, high = min(ids), max(ids) + 1
    cuts = sorted({low + (high - low) * i // ranges for i in range(1, ranges)} - {low})
    edges: list[int | None] = [None, *cuts, None]
    return list(itertools.pairwise(edges))


def _in_range(column: sa.ColumnElement[Any], lo: int | None, hi: int | None) -> sa.ColumnElement[bool]:
    return sa.and_(
        sa.true() if lo is None else column >= lo,
        sa.true() if hi is None else column < hi,
    )


def _write_open(
    conn: sa.Connection, kind: str, key: str, period: int, plan: dict[str, Any], bounds: list[Bounds]
) -> None:
    conn.execute(
        sa.insert(t.settlement_open).values(
            kind=kind, key=key, period=period, plan=json.dumps(plan), opened_at=wall_ms()
        )
    )
    conn.execute(  # the figures are the columns' defaults until the range is applied
        sa.insert(t.settlement_range),
        [
            {"kind": kind, "key": key, "period": period, "range_no": number, "lo": lo, "hi": hi}
            for number, (lo, hi) in enumerate(bounds)
        ],
    )


def _plan(conn: sa.Connection, kind: str, key: str, period: int) -> dict[str, Any] | None:
    o = t.settlement_open
    text = conn.execute(
        sa.select(o.c.plan).where(o.c.kind == kind, o.c.key == key, o.c.period == period)
    ).scalar()
    return None if text is None else dict(json.loads(text))


def is_open(engine: sa.Engine, kind: str, key: str | int, period: int) -> bool:
    with db.read_only(engine.connect()) as conn:
        return _plan(conn, kind, str(key), period) is not None


def open_periods(engine: sa.Engine) -> list[tuple[str, str, int]]:
    o = t.settlement_open
    with db.read_only(engine.connect()) as conn:
        rows = conn.execute(sa.select(o.c.kind, o.c.key, o.c.period).order_by(o.c.period, o.c.kind, o.c.key))
        return [(kind, key, int(period)) for kind, key, period in rows]


@dataclass(frozen=True)
class _Range:
    number: int
    lo: int | None
    hi: int | None


def _claim(conn: sa.Connection, kind: str, key: str, period: int, *, wait: bool) -> _Range | None:
    """Lock the first unapplied range (skipping those another worker holds, unless `wait`)."""
    r = t.settlement_range
    query = (
        sa.select(r.c.range_no, r.c.lo, r.c.hi)
        .where(r.c.kind == kind, r.c.key == key, r.c.period == period, r.c.applied_at.is_(None))
        .order_by(r.c.range_no)
        .limit(1)
        .with_for_update(skip_locked=not wait)
    )
    row = conn.execute(query).first()
    return None if row is None else _Range(row.range_no, row.lo, row.hi)


def _mark_applied(
    conn: sa.Connection, kind: str, key: str, period: int, number: int, worker: str, **figures: Any
) -> None:
    r = t.settlement_range
    done = conn.execute(
        sa.update(r)
        .where(
            r.c.kind == kind,
            r.c.key == key,
            r.c.period == period,
            r.c.range_no == number,
            r.c.applied_at.is_(None),
        )
        .values(applied_at=wall_ms(), applied_by=worker[:128], **figures)
    ).rowcount
    if done != 1:  # the claim's lock makes this impossible; refuse rather than apply twice
        raise RuntimeError(f"{kind} {period} of {key}: range {number} was applied meanwhile")


def apply_next(
    engine: sa.Engine, kind: str, key: str, period: int, *, worker: str = "", wait: bool = False
) -> bool:
    """Apply one unapplied range of the open period; False when none is left to claim."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        plan = _plan(conn, kind, key, period)
        claimed = None if plan is None else _claim(conn, kind, key, period, wait=wait)
        if plan is None or claimed is None:
            return False
        if kind == HOUR:
            _apply_hour_range(conn, key, period, plan, claimed, worker)
        else:
            _apply_day_range(conn, int(key), period, claimed, worker)
        uow.commit()
    return True


def _ranges(conn: sa.Connection, kind: str, key: str, period: int) -> list[sa.Row[Any]]:
    r = t.settlement_range
    return list(
        conn.execute(
            sa.select(r).where(r.c.kind == kind, r.c.key == key, r.c.period == period).order_by(r.c.range_no)
        )
    )


def _delete_open(conn: sa.Connection, kind: str, key: str, period: int) -> None:
    r, o = t.settlement_range, t.settlement_open
    conn.execute(sa.delete(r).where(r.c.kind == kind, r.c.key == key, r.c.period == period))
    conn.execute(sa.delete(o).where(o.c.kind == kind, o.c.key == key, o.c.period == period))


# --- market hours --------------------------------------------------------------------------------


def open_hour(uow: UnitOfWork, ccy: str, hour: int, ranges: int) -> bool:
    """Open `hour` of `ccy` in `ranges` ranges (or find it open); False if it is already settled."""
    with uow:
        conn = uow.conn
        market = settings_from_row(repo.market(conn, ccy, lock="update"))
        if _plan(conn, HOUR, ccy, hour) is not None:
            return True
        planned = settlement.plan_next(conn, market, hour, with_changes=False)  # the ranges make them
        if planned is None:
            return False
        last_match, positions = planned.last_match, planned.positions
        document = {
            "places": planned.places,
            "last": None
            if last_match is None
            else [str(last_match.borrow_rate), str(last_match.lender_rate)],
            "rule": LendingRule.of(planned.plan, positions, planned.terms, planned.demand.demand).to_json(),
            "figures": {name: str(value) for name, value in planned.figures().items()},
            "demand_state": planned.demand.state,
        }
        _write_open(conn, HOUR, ccy, hour, document, split((p.user_id for p in positions), ranges))
        uow.commit()
    return True


def _apply_hour_range(
    conn: sa.Connection, ccy: str, hour: int, plan: dict[str, Any], claimed: _Range, worker: str
) -> None:
    places = int(plan["places"])
    last = None if plan["last"] is None else LastMatch(*(Decimal(x) for x in plan["last"]))
    rule = LendingRule.from_json(plan["rule"])
    positions = repo.positions_for_settlement(conn, ccy, users=(claimed.lo, claimed.hi))
    part = plan_range_rows(positions, last, places, rule)
    if part.interest_total > 0:
        entry = compound(
            "interest",
            ccy,
            (
                Leg(AccountRef.system(AccountKind.BORROWERS, ccy), -part.interest_total),
                Leg(AccountRef.system(AccountKind.SAVINGS, ccy), part.interest_total),
            ),
            f"hour:{hour}:range:{claimed.number}",
        )
        repo.post(conn, entry, hour)
    settlement.write_changes(conn, ccy, hour, last, part.changes)
    _mark_applied(
        conn,
        HOUR,
        ccy,
        hour,
        claimed.number,
        worker,
        items=len(part.changes),
        interest=part.interest_total,
        lent=part.lent_total,
    )


def close_hour(uow: UnitOfWork, ccy: str, hour: int) -> settlement.SettledHour | None:
    """Close the open `hour` once every range is applied; None if it is not open (closed already)
    or has ranges left. `RangesDisagree` if the ranges' sums are not the plan's."""
    with uow:
        conn = uow.conn
        repo.market(conn, ccy, lock="update")
        plan = _plan(conn, HOUR, ccy, hour)
        if plan is None:
            return None
        ranges = _ranges(conn, HOUR, ccy, hour)
        if any(r.applied_at is None for r in ranges):
            return None
        figures = {name: Decimal(value) for name, value in plan["figures"].items()}
        interest = sum((r.interest for r in ranges), ZERO)
        lent = sum((r.lent for r in ranges), ZERO)
        if interest != figures["interest_paid"] or lent != figures["lent"]:
            raise RangesDisagree(
                f"{ccy} hour {hour}: ranges paid {interest} and lent {lent}, "
                f"the plan {figures['interest_paid']} and {figures['lent']}"
            )
        insurance, rounding = figures["insurance_fee"], figures["rounding"]
        entry_id = None
        if insurance + rounding > 0:
            rest = compound(
                "interest",
                ccy,
                (
                    Leg(AccountRef.system(AccountKind.BORROWERS, ccy), -(insurance + rounding)),
                    Leg(AccountRef.system(AccountKind.INSURANCE, ccy), insurance),
                    Leg(AccountRef.system(AccountKind.ROUNDING, ccy), rounding),
                ),
                f"hour:{hour}",
            )
            entry_id = repo.post(conn, rest, hour)
        changed = sum(r.items for r in ranges)
        settled = settlement.record_hour(conn, ccy, hour, figures, plan["demand_state"], entry_id, changed)
        _delete_open(conn, HOUR, ccy, hour)
        uow.commit()
    return settled


# --- catalog days --------------------------------------------------------------------------------


def open_day(uow: UnitOfWork, product_id: int, day: int, ranges: int) -> bool:
    """Open `day` of a product in `ranges` ranges (or find it open); False if already settled."""
    key = str(product_id)
    with uow:
        conn = uow.conn
        load_product(conn, product_id, lock=True, gated=False)
        if _plan(conn, DAY, key, day) is not None:
            return True
        expected = catalog_settlement.next_day(conn, product_id)
        if day < expected:
            return False
        if day > expected:
            raise catalog_settlement.DayOutOfOrder(
                f"product {product_id}: day {day} is due only after {expected}"
            )
        h = t.holding
        span = conn.execute(
            sa.select(sa.func.min(h.c.user_id), sa.func.max(h.c.user_id)).where(
                h.c.product_id == product_id, h.c.open.is_(True)
            )
        ).one()
        users = [] if span[0] is None else [int(span[0]), int(span[1])]
        _write_open(conn, DAY, key, day, {}, split(users, ranges))
        uow.commit()
    return True


def _apply_day_range(conn: sa.Connection, product_id: int, day: int, claimed: _Range, worker: str) -> None:
    product = load_product(conn, product_id)
    paid, expired, _ = catalog_settlement.settle_users(
        conn, product, day, _in_range(t.holding.c.user_id, claimed.lo, claimed.hi), f":range:{claimed.number}"
    )
    _mark_applied(
        conn,
        DAY,
        str(product_id),
        day,
        claimed.number,
        worker,
        items=len(paid),
        interest=sum(paid.values(), ZERO),
        expired=expired,
    )


def close_day(uow: UnitOfWork, product_id: int, day: int) -> catalog_settlement.SettledDay | None:
    """Close the open day once every range is applied; None if it is not open or has ranges left."""
    key = str(product_id)
    with uow:
        conn = uow.conn
        load_product(conn, product_id, lock=True, gated=False)
        if _plan(conn, DAY, key, day) is None:
            return None
        ranges = _ranges(conn, DAY, key, day)
        if any(r.applied_at is None for r in ranges):
            return None
        holdings, interest = sum(r.items for r in ranges), sum((r.interest for r in ranges), ZERO)
        catalog_settlement.record_day(conn, product_id, day, holdings, interest, None)
        _delete_open(conn, DAY, key, day)
        uow.commit()
    return catalog_settlement.SettledDay(product_id, day, holdings, interest, sum(r.expired for r in ranges))


# --- driving a period ----------------------------------------------------------------------------

KeepGoing = Callable[[], bool]


def _always() -> bool:
    return True


def _apply_all(
    engine: sa.Engine, kind: str, key: str, period: int, worker: str, keep_going: KeepGoing
) -> bool:
    """Apply the period's ranges — those no other worker holds, then, waiting for those, the rest
    (a worker that died holding one released it) — until none is left; False if `keep_going` said
    stop first."""
    for wait in (False, True):
        while True:
            if not keep_going():
                return False
            if apply_next(engine, kind, key, period, worker=worker, wait=wait):
                continue
            # PostgreSQL's FOR UPDATE … LIMIT 1 may find nothing when the range it waited for was
            # applied meanwhile, though others remain: look again while any is unapplied
            if not wait or not _unapplied(engine, kind, key, period):
                break
    return True


def _unapplied(engine: sa.Engine, kind: str, key: str, period: int) -> bool:
    r = t.settlement_range
    with engine.connect() as conn:
        query = sa.select(r.c.range_no).where(
            r.c.kind == kind, r.c.key == key, r.c.period == period, r.c.applied_at.is_(None)
        )
        return conn.execute(query.limit(1)).first() is not None


def settle_hour(
    engine: sa.Engine, ccy: str, hour: int, ranges: int, *, worker: str = "", keep_going: KeepGoing = _always
) -> settlement.SettledHour | None:
    """Settle `hour` of `ccy`: in one transaction when `ranges` is 1 (unless another settler has
    it open in ranges: then, as with more), else open it, apply its ranges (with any other worker
    helping) and close it. None if it was settled already (or `keep_going` stopped it: it stays
    open for the next settler)."""
    if ranges <= 1:
        settled = settlement.settle_hour(UnitOfWork(engine), ccy, hour)
        if settled is not None or not is_open(engine, HOUR, ccy, hour):
            return settled
    if not open_hour(UnitOfWork(engine), ccy, hour, ranges):
        return None
    if not _apply_all(engine, HOUR, ccy, hour, worker, keep_going):
        return None
    return close_hour(UnitOfWork(engine), ccy, hour)


def settle_day(
    engine: sa.Engine,
    product_id: int,
    day: int,
    ranges: int,
    *,
    worker: str = "",
    keep_going: KeepGoing = _always,
) -> catalog_settlement.SettledDay | None:
    """`settle_hour` for a product's day."""
    if ranges <= 1:
        settled = catalog_settlement.settle_day(UnitOfWork(engine), product_id, day)
        if settled is not None or not is_open(engine, DAY, product_id, day):
            return settled
    if not open_day(UnitOfWork(engine), product_id, day, ranges):
        return None
    if not _apply_all(engine, DAY, str(product_id), day, worker, keep_going):
        return None
    return close_day(UnitOfWork(engine), product_id, day)


def help_open_periods(engine: sa.Engine, *, worker: str = "", keep_going: KeepGoing = _always) -> int:
    """Apply ranges of every open period that no other worker holds (a standby's share of the
    settler's work); how many it applied. Closing is the settler's."""
    applied = 0
    for kind, key, period in open_periods(engine):
        while keep_going() and apply_next(engine, kind, key, period, worker=worker):
            applied += 1
    if applied:
        log.info("applied %d ranges of open periods", applied, extra={"ranges": applied, "worker": worker})
    return applied
