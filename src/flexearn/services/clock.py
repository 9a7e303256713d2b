"""Business time as the operator sees and moves it (the CLI and the admin API both call these)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import clock as clocks
from flexearn.adapters import tables as t
from flexearn.domain.errors import ClockError
from flexearn.domain.money import D
from flexearn.domain.periods import ClockMode
from flexearn.services import scheduler
from flexearn.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ClockView:
    mode: str  # a ClockMode
    now: int  # business time, ms
    speed: Decimal  # business seconds per real second (1 on the real clock)


def _view(state: clocks.ClockState) -> ClockView:
    return ClockView(state.mode, state.now(clocks.wall_ms()), state.speed)


def show(uow: UnitOfWork) -> ClockView:
    with uow:
        return _view(clocks.read(uow.conn))


def set_simulated(uow: UnitOfWork, speed: Decimal, start_ms: int | None = None) -> ClockView:
    """Switch to (or re-tune) the simulated clock, from the current business time or `start_ms`."""
    with uow:
        state = clocks.set_simulated(uow.conn, speed, start_ms)
        uow.commit()
    return _view(state)


def set_speed(uow: UnitOfWork, speed: Decimal) -> ClockView:
    """Change how fast a simulated clock runs; a real clock is refused."""
    with uow:
        if clocks.read(uow.conn, lock=True).mode != ClockMode.SIMULATED:
            raise ClockError("only a simulated clock has a speed", param="speed")
        state = clocks.set_simulated(uow.conn, speed)
        uow.commit()
    return _view(state)


def set_real(uow: UnitOfWork) -> ClockView:
    with uow:
        state = clocks.set_real(uow.conn)
        uow.commit()
    return _view(state)


@dataclass(frozen=True)
class Advanced:
    clock: ClockView
    settled: scheduler.Settled


def move(uow: UnitOfWork, hours: int) -> None:
    """Move a simulated clock `hours` forward, settling nothing (`advance` settles after)."""
    with uow:
        clocks.advance(uow.conn, hours * clocks.HOUR_MS)
        uow.commit()


def advance(engine: sa.Engine, hours: int, progress: scheduler.Progress | None = None) -> Advanced:
    """Move a simulated clock forward, then settle every hour and day that became due."""
    move(UnitOfWork(engine), hours)
    settled = scheduler.settle_all_due(engine, progress=progress)
    return Advanced(show(UnitOfWork(engine)), settled)


def pause(uow: UnitOfWork) -> ClockView:
    """Stop a simulated clock where it is (a sandbox stopping: its world waits for it)."""
    with uow:
        if clocks.read(uow.conn, lock=True).mode != ClockMode.SIMULATED:
            raise ClockError("only a simulated clock can be paused")
        state = clocks.set_simulated(uow.conn, D(0))
        uow.commit()
    return _view(state)


def resume(uow: UnitOfWork, speed: Decimal) -> ClockView:
    """Run a simulated clock again at `speed` from where it stopped: where it was paused, or, if
    it was not (its process was killed), from the latest business time the database recorded —
    a settled hour or a journal entry — rather than jumping by the wall time missed."""
    with uow:
        state = clocks.read(uow.conn, lock=True)
        if state.mode == ClockMode.SIMULATED and state.speed == 0:
            start = state.business_anchor
        else:
            hour = uow.conn.execute(sa.select(sa.func.max(t.market_hour.c.hour))).scalar()
            entry = uow.conn.execute(sa.select(sa.func.max(t.journal_entry.c.ts))).scalar()
            recorded = [int(v) for v in (hour, entry) if v is not None]
            start = max(recorded) if recorded else state.now(clocks.wall_ms())
        state = clocks.set_simulated(uow.conn, speed, start)
        uow.commit()
    return _view(state)
