"""The period machinery: plan a period, apply it to ranges of users, close it — for any kind.

A period — a market's hour, a catalog product's day (`hour.HOURS`, `day.DAYS`) — settles in
three steps, each a method of its kind (`PeriodKind`):

1. **plan** (under the market's or product's lock): the period's order is checked; what every
   range needs is computed (for an hour, the match over every position, reduced to a
   `LendingRule` and the hour's figures; a day needs nothing global).
2. **apply** to a range of users: interest, compounding, new loans, history, orders, expiries and
   their journal entries, for the positions or holdings of the users in the range.
3. **close**: check the ranges' sums against the plan, book the rest, write the `market_hour` /
   `product_day` row — the period's exactly-once key.

`settle_once` runs the three in one transaction over one range of every user. Settled in N
ranges, each step is its own transaction that any worker may run: `open_period` writes the plan
to `settlement_open` and N ranges to `settlement_range` (from then on trading in that currency or
product waits: `gate`), `apply_next` claims an unapplied range (`FOR UPDATE SKIP LOCKED`) and
marks it applied in the same transaction, `close_period` closes once every range is applied and
deletes the open rows. A worker dying at any point leaves a period not opened, open with ranges
left (applied by whoever comes next, then closed), or closed. The result is the one
transaction's, row for row (`tests/integration/test_range_settlement.py`); the journal differs
only in splitting the period's entries by range.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar, cast

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.money import ZERO
from flexearn.services import gate
from flexearn.services.unit_of_work import UnitOfWork

log = logging.getLogger("flexearn.settlement")

Bounds = tuple[int | None, int | None]
# Asked before each period's transaction: False stops the pass (the settler lost its lease).
KeepGoing = Callable[[], bool]
# Told (periods done, periods due) as settlement goes: a progress bar on a long catch-up.
Progress = Callable[[int, int], None]


class RangesDisagree(RuntimeError):
    """The applied ranges do not add up to the plan: positions changed under an open period."""


@dataclass(frozen=True)
class Part:
    """The users a step applies to: ids in [lo, hi) (None: unbounded); `number` None is every
    user in the one transaction of `settle_once`."""

    number: int | None
    lo: int | None = None
    hi: int | None = None

    @property
    def ref_suffix(self) -> str:
        return "" if self.number is None else f":range:{self.number}"


WHOLE = Part(None)


@dataclass(frozen=True)
class Applied:
    """What a part applied: the `settlement_range` figures, and (whole) the entry to record."""

    items: int
    interest: Decimal
    lent: Decimal = ZERO
    expired: int = 0
    entry_id: int | None = None


@dataclass(frozen=True)
class Schedule:
    """Where a kind's periods are scheduled (`due`): each key's first period (`first`, a column of
    the table of `key`), the settled periods (`settled`, a column of the table of `settled_key`),
    the period after a settled one (`after`), the periods' length (`step`), and the last period
    start a time may have reached (`started_by`). Keys of one `lane` (a column of the table of
    `key`) may lock the same rows: they never settle side by side (`settle_due`)."""

    key: sa.Column[Any]
    first: sa.Column[Any]
    settled_key: sa.Column[Any]
    settled: sa.Column[Any]
    after: Callable[[int], int]
    step: int
    started_by: Callable[[int], int]
    lane: sa.Column[Any]


class Planned(Protocol):
    """A period's plan: serialisable for the ranges, and the users to cut them from."""

    @property
    def user_ids(self) -> Sequence[int]: ...

    def to_json(self) -> dict[str, Any]: ...


P = TypeVar("P", bound=Planned)
S = TypeVar("S")  # what a settled period reports (`SettledHour`, `SettledDay`)
S_co = TypeVar("S_co", covariant=True)


class PeriodKind(Protocol, Generic[P, S_co]):
    name: str  # gate.HOUR, gate.DAY: the kind's name in `settlement_open`
    schedule: Schedule

    def lock(self, conn: sa.Connection, key: str) -> None:
        """Take the lock under which the period is planned and closed (trading waits for it)."""

    def plan(self, conn: sa.Connection, key: str, period: int, *, whole: bool) -> P | None:
        """The plan of `period`, which must be the next to settle; None if it is settled."""

    def restore(self, raw: Mapping[str, Any]) -> P:
        """A plan from its JSON (`to_json`)."""

    def apply(self, conn: sa.Connection, key: str, period: int, plan: P, part: Part) -> Applied: ...

    def close(
        self, conn: sa.Connection, key: str, period: int, plan: P, applied: Sequence[Applied], *, whole: bool
    ) -> S_co: ...


class _CollectorPause:
    """Settling makes a row, a tuple and Decimals per position or holding, none of them in a cycle;
    the cyclic collector would traverse them all again and again (11–17 % of a 100k hour's CPU).
    It is paused while any thread settles (reference counting still frees everything), and left
    as it was found once none does.

    Used as a decorator (`_without_cyclic_gc`), so that the settling function's locals — its plan
    and rows — are freed before the collector comes back: alive then, its first collection would
    traverse every one of them (measured: 9 % of a 100k SQLite hour's CPU, spent in the
    allocation right after `gc.enable()`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._was_enabled:
                gc.enable()


_cyclic_gc_paused = _CollectorPause()
_Settling = TypeVar("_Settling", bound=Callable[..., Any])


def _without_cyclic_gc(settling: _Settling) -> _Settling:
    @functools.wraps(settling)
    def paused(*args: Any, **kwargs: Any) -> Any:
        with _cyclic_gc_paused:
            return settling(*args, **kwargs)

    return cast(_Settling, paused)


@_without_cyclic_gc
def settle_once(uow: UnitOfWork, kind: PeriodKind[P, S], key: str, period: int) -> S | None:
    """Plan, apply and close `period` in one transaction; None if it is settled, or open in ranges
    (then `settle` finishes it in its ranges)."""
    with uow:
        conn = uow.conn
        kind.lock(conn, key)
        if gate.open_period(conn, kind.name, key) is not None:
            return None
        plan = kind.plan(conn, key, period, whole=True)
        if plan is None:
            return None
        applied = kind.apply(conn, key, period, plan, WHOLE)
        settled = kind.close(conn, key, period, plan, [applied], whole=True)
        uow.commit()
    return settled


def due(uow: UnitOfWork, kind: PeriodKind[Any, Any]) -> dict[Any, list[int]]:
    """Per key, the periods of `kind` whose start has passed on the business clock and are
    unsettled, in order."""
    s = kind.schedule
    with uow:
        now = s.started_by(uow.now())
        rows = uow.conn.execute(
            sa.select(s.key, s.first, sa.func.max(s.settled))
            .select_from(s.key.table.outerjoin(s.settled.table, s.settled_key == s.key))
            .group_by(s.key, s.first)
            .order_by(s.key)
        ).all()
    return {
        key: list(range(first if last is None else s.after(last), now + 1, s.step))
        for key, first, last in rows
    }


# --- in ranges -----------------------------------------------------------------------------------


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


def _stored_plan(conn: sa.Connection, kind: str, key: str, period: int) -> dict[str, Any] | None:
    o = t.settlement_open
    text = conn.execute(
        sa.select(o.c.plan).where(o.c.kind == kind, o.c.key == key, o.c.period == period)
    ).scalar()
    return None if text is None else dict(json.loads(text))


def is_open(engine: sa.Engine, kind: str, key: str | int, period: int) -> bool:
    with db.read_only(engine.connect()) as conn:
        return _stored_plan(conn, kind, str(key), period) is not None


def open_periods(engine: sa.Engine) -> list[tuple[str, str, int]]:
    o = t.settlement_open
    with db.read_only(engine.connect()) as conn:
        rows = conn.execute(sa.select(o.c.kind, o.c.key, o.c.period).order_by(o.c.period, o.c.kind, o.c.key))
        return [(kind, key, int(period)) for kind, key, period in rows]


@_without_cyclic_gc
def open_period(uow: UnitOfWork, kind: PeriodKind[P, S], key: str, period: int, ranges: int) -> bool:
    """Open `period` in `ranges` ranges (or find it open); False if it is settled already."""
    with uow:
        conn = uow.conn
        kind.lock(conn, key)
        if _stored_plan(conn, kind.name, key, period) is not None:
            return True
        plan = kind.plan(conn, key, period, whole=False)
        if plan is None:
            return False
        conn.execute(
            sa.insert(t.settlement_open).values(
                kind=kind.name, key=key, period=period, plan=json.dumps(plan.to_json()), opened_at=wall_ms()
            )
        )
        conn.execute(  # the figures are the columns' defaults until the range is applied
            sa.insert(t.settlement_range),
            [
                {"kind": kind.name, "key": key, "period": period, "range_no": number, "lo": lo, "hi": hi}
                for number, (lo, hi) in enumerate(split(plan.user_ids, ranges))
            ],
        )
        uow.commit()
    return True


def _claim(conn: sa.Connection, kind: str, key: str, period: int, *, wait: bool) -> Part | None:
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
    return None if row is None else Part(row.range_no, row.lo, row.hi)


@_without_cyclic_gc
def apply_next(
    engine: sa.Engine, kind: PeriodKind[P, S], key: str, period: int, *, worker: str = "", wait: bool = False
) -> bool:
    """Apply one unapplied range of the open period; False when none is left to claim."""
    with UnitOfWork(engine) as uow:
        conn = uow.conn
        raw = _stored_plan(conn, kind.name, key, period)
        claimed = None if raw is None else _claim(conn, kind.name, key, period, wait=wait)
        if raw is None or claimed is None:
            return False
        applied = kind.apply(conn, key, period, kind.restore(raw), claimed)
        r = t.settlement_range
        done = conn.execute(
            sa.update(r)
            .where(
                r.c.kind == kind.name,
                r.c.key == key,
                r.c.period == period,
                r.c.range_no == claimed.number,
                r.c.applied_at.is_(None),
            )
            .values(
                applied_at=wall_ms(),
                applied_by=worker[:128],
                items=applied.items,
                interest=applied.interest,
                lent=applied.lent,
                expired=applied.expired,
            )
        ).rowcount
        if done != 1:  # the claim's lock makes this impossible; refuse rather than apply twice
            raise RuntimeError(f"{kind.name} {period} of {key}: range {claimed.number} was applied meanwhile")
        uow.commit()
    return True


def close_period(uow: UnitOfWork, kind: PeriodKind[P, S], key: str, period: int) -> S | None:
    """Close the open period once every range is applied; None if it is not open (closed already)
    or has ranges left. `RangesDisagree` if the ranges' sums are not the plan's."""
    r, o = t.settlement_range, t.settlement_open
    mine = (r.c.kind == kind.name, r.c.key == key, r.c.period == period)
    with uow:
        conn = uow.conn
        kind.lock(conn, key)
        raw = _stored_plan(conn, kind.name, key, period)
        if raw is None:
            return None
        ranges = list(conn.execute(sa.select(r).where(*mine).order_by(r.c.range_no)))
        if any(row.applied_at is None for row in ranges):
            return None
        applied = [Applied(row.items, row.interest, row.lent, row.expired) for row in ranges]
        settled = kind.close(conn, key, period, kind.restore(raw), applied, whole=False)
        conn.execute(sa.delete(r).where(*mine))
        conn.execute(sa.delete(o).where(o.c.kind == kind.name, o.c.key == key, o.c.period == period))
        uow.commit()
    return settled


# --- driving a period ----------------------------------------------------------------------------


def always() -> bool:
    return True


def _apply_all(
    engine: sa.Engine, kind: PeriodKind[P, S], key: str, period: int, worker: str, keep_going: KeepGoing
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
            if not wait or not _unapplied(engine, kind.name, key, period):
                break
    return True


def _unapplied(engine: sa.Engine, kind: str, key: str, period: int) -> bool:
    r = t.settlement_range
    with engine.connect() as conn:
        query = sa.select(r.c.range_no).where(
            r.c.kind == kind, r.c.key == key, r.c.period == period, r.c.applied_at.is_(None)
        )
        return conn.execute(query.limit(1)).first() is not None


def settle(
    engine: sa.Engine,
    kind: PeriodKind[P, S],
    key: str,
    period: int,
    ranges: int,
    *,
    worker: str = "",
    keep_going: KeepGoing = always,
) -> S | None:
    """Settle `period`: in one transaction when `ranges` is 1 (unless another settler has it open
    in ranges: then, as with more), else open it, apply its ranges (with any other worker helping)
    and close it. None if it was settled already (or `keep_going` stopped it: it stays open for
    the next settler)."""
    if ranges <= 1:
        settled = settle_once(UnitOfWork(engine), kind, key, period)
        if settled is not None or not is_open(engine, kind.name, key, period):
            return settled
    if not open_period(UnitOfWork(engine), kind, key, period, ranges):
        return None
    if not _apply_all(engine, kind, key, period, worker, keep_going):
        return None
    return close_period(UnitOfWork(engine), kind, key, period)


def help_open_periods(
    engine: sa.Engine,
    kinds: Mapping[str, PeriodKind[Any, Any]],
    *,
    worker: str = "",
    keep_going: KeepGoing = always,
) -> int:
    """Apply ranges of every open period that no other worker holds (a standby's share of the
    settler's work); how many it applied. Closing is the settler's."""
    applied = 0
    for name, key, period in open_periods(engine):
        while keep_going() and apply_next(engine, kinds[name], key, period, worker=worker):
            applied += 1
    if applied:
        log.info("applied %d ranges of open periods", applied, extra={"ranges": applied, "worker": worker})
    return applied


def settle_due(
    engine: sa.Engine,
    kind: PeriodKind[P, S],
    due: Mapping[Any, Sequence[int]],
    *,
    ranges: int = 1,
    threads: int = 1,
    worker: str = "",
    keep_going: KeepGoing = always,
    progress: Progress | None = None,
) -> list[S]:
    """`settle` each due (key, period), oldest period first (the keys of one period in key order);
    what it settled. `keep_going` is asked before each, `progress` told after each. A key that
    fails does not stop the period's others: the first failure is raised once they are settled.

    On PostgreSQL the keys due at one period settle up to `threads` at a time, each in its own
    thread, transaction and connection: one key's Python work overlaps another's statements.
    Keys of one lane (`Schedule.lane`: a coin's products) take turns, as everything does on
    SQLite, which has one writer."""
    work: dict[int, list[Any]] = {}
    for key, periods in sorted(due.items()):
        for period in periods:
            work.setdefault(period, []).append(key)
    total, done, settled = sum(map(len, work.values())), 0, list[S]()
    stopped = False

    def one(key: Any, period: int) -> S | None:
        nonlocal stopped
        if stopped or not keep_going():
            stopped = True
            return None
        return settle(engine, kind, str(key), period, ranges, worker=worker, keep_going=keep_going)

    crowded = any(len(keys) > 1 for keys in work.values())  # `due` lists every key, due or not
    side_by_side = threads > 1 and engine.dialect.name == "postgresql" and crowded
    lanes = _lanes(engine, kind) if side_by_side else {}
    with _side_by_side(threads if side_by_side else 1) as run:
        for period in sorted(work):
            failed: Exception | None = None
            for result, error in run(one, work[period], period, lanes):
                failed = failed or error
                if result is not None:
                    settled.append(result)
                done += 1
                if progress is not None:
                    progress(done, total)
            if failed is not None:
                raise failed
            if stopped:
                break
    return settled


def _lanes(engine: sa.Engine, kind: PeriodKind[Any, Any]) -> dict[Any, Any]:
    s = kind.schedule
    with db.read_only(engine.connect()) as conn:
        return dict(conn.execute(sa.select(s.key, s.lane)).all())


Outcome = tuple[Any, Exception | None]  # what a call returned, or how it failed
Run = Callable[[Callable[[Any, int], Any], Sequence[Any], int, Mapping[Any, Any]], list[Outcome]]


def _in_turn(f: Callable[[Any, int], Any], keys: Sequence[Any], period: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for key in keys:
        try:
            outcomes.append((f(key, period), None))
        except Exception as error:  # the caller raises it after the period's other keys
            outcomes.append((None, error))
    return outcomes


@contextmanager
def _side_by_side(threads: int) -> Iterator[Run]:
    """A `run(f, keys, period, lanes)` giving the outcome of f(key, period) for each key, in key
    order: one call after the other, or up to `threads` lanes at once (a key's lane in `lanes`,
    else its own), each lane's keys in turn, in a copy of the caller's context (its request id)."""
    if threads <= 1:
        yield lambda f, keys, period, lanes: _in_turn(f, keys, period)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="settle") as pool:

        def at_once(
            f: Callable[[Any, int], Any], keys: Sequence[Any], period: int, lanes: Mapping[Any, Any]
        ) -> list[Outcome]:
            by_lane: dict[Any, list[Any]] = {}
            for key in keys:
                by_lane.setdefault(lanes.get(key, key), []).append(key)
            calls = {
                lane: pool.submit(contextvars.copy_context().run, _in_turn, f, turn, period)
                for lane, turn in by_lane.items()
            }
            outcomes: dict[Any, Outcome] = {}
            for lane, turn in by_lane.items():
                outcomes.update(zip(turn, calls[lane].result(), strict=True))
            return [outcomes[key] for key in keys]

        yield at_once
