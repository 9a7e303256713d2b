"""Everything that falls due on the business clock: market hours, catalog days, redemptions.

`settle_all_due` settles what is due once; `run_settler` is the settling worker's loop: while
this process holds the settler lease (services/leader.py) it settles each period as it falls due,
catching up missed ones oldest first, and runs the periodic maintenance jobs after each pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import sqlalchemy as sa

from flexearn.adapters import clock as clocks
from flexearn.adapters import db
from flexearn.observability import context
from flexearn.observability.metrics import CATALOG_DAY, MARKET_HOUR, observe_settlement
from flexearn.services import realtime_apr, settlement
from flexearn.services.catalog_delivery import deliver_redemptions
from flexearn.services.earn_wallets import sweep_all
from flexearn.services.leader import Lease
from flexearn.services.unit_of_work import UnitOfWork

log = logging.getLogger("flexearn.settlement")

KeepGoing: TypeAlias = settlement.KeepGoing
Progress: TypeAlias = settlement.Progress

# A periodic job the settler runs after a pass that settled something (history retention, …).
Maintenance = Callable[[sa.Engine], object]


@dataclass(frozen=True)
class Settled:
    hours: list[settlement.SettledHour] = field(default_factory=list)
    days: list[settlement.SettledDay] = field(default_factory=list)


def settle_all_due(
    engine: sa.Engine,
    keep_going: KeepGoing = settlement.always,
    *,
    ranges: int = 1,
    threads: int = 1,
    worker: str = "",
    progress: Progress | None = None,
) -> Settled:
    """Market hours first (hourly, oldest first), then the real-time APRs that follow them or
    walk, then catalog days and due redemptions; on PostgreSQL up to `threads` currencies' hours or
    products' days at a time (`settlement.settle_due`).

    Each period is its own transaction, or with `ranges` > 1 shared by user-id range with whichever
    workers help (services/settlement/period.py); `keep_going` is asked before each transaction, so
    a settler that lost its lease stops after the one it is in. `progress` is told (done, total)
    after each period, hours and days each counted from 0.
    """
    with context.ensure_request_scope():
        started = time.perf_counter()
        hours = settle_due_hours(
            engine, keep_going, ranges=ranges, threads=threads, worker=worker, progress=progress
        )
        realtime_apr.catch_up_all(UnitOfWork(engine))  # the hours' lending rates, the walks' moves
        middle = time.perf_counter()
        days = settle_due_days(
            engine, keep_going, ranges=ranges, threads=threads, worker=worker, progress=progress
        )
        ended = time.perf_counter()
        if hours:
            observe_settlement(MARKET_HOUR, middle - started, [h.positions_changed for h in hours])
        if days:
            observe_settlement(CATALOG_DAY, ended - middle, [d.holdings for d in days])
        if hours or days:
            log.info(
                "settled %d currency-hours and %d product-days",
                len(hours),
                len(days),
                extra={"hours": len(hours), "days": len(days), "seconds": round(ended - started, 6)},
            )
    return Settled(hours, days)


def settle_due_hours(
    engine: sa.Engine,
    keep_going: KeepGoing = settlement.always,
    *,
    ranges: int = 1,
    threads: int = 1,
    worker: str = "",
    progress: Progress | None = None,
) -> list[settlement.SettledHour]:
    """Every due market hour, oldest first (catching up after downtime), currencies side by side
    (`settlement.settle_due`); `keep_going` is asked before each. Safe from several processes at
    once: each hour is settled by whichever gets there first, the others skip it."""
    due = settlement.due_hours(UnitOfWork(engine, read_only=True))
    return settlement.settle_due(
        engine,
        settlement.HOURS,
        due,
        ranges=ranges,
        threads=threads,
        worker=worker,
        keep_going=keep_going,
        progress=progress,
    )


def settle_due_days(
    engine: sa.Engine,
    keep_going: KeepGoing = settlement.always,
    *,
    ranges: int = 1,
    threads: int = 1,
    worker: str = "",
    progress: Progress | None = None,
) -> list[settlement.SettledDay]:
    """Every due (product, day), oldest day first, products of different coins side by side
    (`settlement.settle_due`), then the redemptions whose delay has passed, then (if a day was
    settled) the auto-subscribe sweep of what they paid into funding."""
    due = settlement.due_days(UnitOfWork(engine, read_only=True))
    settled = settlement.settle_due(
        engine,
        settlement.DAYS,
        due,
        ranges=ranges,
        threads=threads,
        worker=worker,
        keep_going=keep_going,
        progress=progress,
    )
    if keep_going():
        deliver_redemptions(UnitOfWork(engine))
    if settled and keep_going():
        sweep_all(engine)  # auto-subscribe: the days' interest, paid into funding
    return settled


def run_settler(
    engine: sa.Engine,
    lease: Lease,
    report: Callable[[settlement.SettledHour], None],
    *,
    poll_seconds: float,
    until: int | None = None,
    maintenance: Sequence[Maintenance] = (),
    stop: threading.Event | None = None,
    ranges: int = 1,
    threads: int = 1,
) -> None:
    """Settle periods as they fall due while `lease` is held, until `stop` is set (or business
    time `until` is reached); wait as a standby while another process holds the lease, applying
    ranges of the periods it settles in `ranges` ranges (`settlement.help_open_periods`); up to
    `threads` periods side by side (`settle_all_due`).

    A failed pass (the database restarting, say) is logged and tried again after `poll_seconds`:
    the worker heals by itself. `lease` must be started; the caller closes it.
    """
    stop = stop or threading.Event()
    held_before = False
    while not stop.is_set():
        held = lease.wait(poll_seconds)
        if not held:
            _help(engine, lease, stop)
        else:
            settled_any = _settle_pass(engine, lease, stop, report, ranges, threads)
            if settled_any is None:  # failed: try again shortly
                stop.wait(poll_seconds)
                continue
            if (settled_any or not held_before) and lease.held():
                run_maintenance(engine, maintenance)
        held_before = held
        if until is not None and _reached(engine, until):
            return
        if held:
            stop.wait(_sleep_seconds(engine, poll_seconds))


def _settle_pass(
    engine: sa.Engine,
    lease: Lease,
    stop: threading.Event,
    report: Callable[[settlement.SettledHour], None],
    ranges: int,
    threads: int,
) -> bool | None:
    """One pass over everything due; whether it settled anything (None: it failed)."""
    try:
        done = settle_all_due(
            engine,
            lambda: lease.held() and not stop.is_set(),
            ranges=ranges,
            threads=threads,
            worker=lease.holder,
        )
    except Exception as error:  # the loop must outlive a database outage; the log says what happened
        _log_failure("settlement pass", error)
        return None
    for hour in done.hours:
        report(hour)
    return bool(done.hours or done.days)


def _help(engine: sa.Engine, lease: Lease, stop: threading.Event) -> None:
    """A standby's turn: apply ranges of the open periods (until it becomes the settler)."""
    try:
        settlement.help_open_periods(
            engine, worker=lease.holder, keep_going=lambda: not stop.is_set() and not lease.held()
        )
    except Exception as error:  # as a failed pass: the standby outlives it
        _log_failure("helping settlement", error)


def _log_failure(what: str, error: Exception) -> None:
    """A failure the worker outlives and tries again: one line while the database is down (it is
    expected then), the traceback otherwise."""
    if db.unavailable(error):
        log.warning("%s: database unavailable (%s); trying again", what, type(error).__name__)
    else:
        log.exception("%s failed; trying again", what)


def run_maintenance(engine: sa.Engine, jobs: Sequence[Maintenance]) -> None:
    """Each job in turn; one failing is logged and does not stop the others or the settler."""
    for job in jobs:
        try:
            job(engine)
        except Exception:  # a maintenance job never takes the settler down
            log.exception("maintenance job %s failed", getattr(job, "__name__", job))


def _sleep_seconds(engine: sa.Engine, poll_seconds: float) -> float:
    try:
        return seconds_to_next_period(engine, poll_seconds)
    except Exception as error:  # the database went away since the pass: look again soon
        if not db.unavailable(error):
            log.exception("reading the clock failed")
        return poll_seconds


def _reached(engine: sa.Engine, until: int) -> bool:
    try:
        with UnitOfWork(engine, read_only=True) as uow:
            return uow.now() >= until
    except Exception as error:  # the database went away: not reached, look again after the sleep
        if not db.unavailable(error):
            raise
        return False


def seconds_to_next_period(engine: sa.Engine, poll_seconds: float) -> float:
    """Real seconds until the next business hour starts, at most `poll_seconds` (the clock may be
    changed meanwhile), at least 10 ms."""
    with db.read_only(engine.connect()) as conn:
        state = clocks.read(conn)
    if state.mode == "simulated" and state.speed == 0:
        return poll_seconds
    now = state.now(clocks.wall_ms())
    business_ms = clocks.floor_hour(now) + clocks.HOUR_MS - now
    real_ms = business_ms / float(state.speed) if state.mode == "simulated" else business_ms
    return min(poll_seconds, max(real_ms / 1000, 0.01))
