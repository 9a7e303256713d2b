"""Business time: the real clock, or a simulated one whose state lives in the database.

Every process reads the simulated clock from the same row, so API processes, the settlement
worker and a restarted process all agree on the time. Request authentication never uses this
clock; it uses `wall_ms()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters.tables import clock, exact
from flexearn.domain.errors import ClockError, InvalidParameter
from flexearn.domain.money import D
from flexearn.domain.periods import ClockMode

HOUR_MS = 3_600_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


def ceil_hour(ms: int) -> int:
    return floor_hour(ms + HOUR_MS - 1)


@dataclass(frozen=True)
class ClockState:
    mode: str  # a ClockMode
    business_anchor: int
    real_anchor: int
    speed: Decimal

    def now(self, real_ms: int) -> int:
        if self.mode == ClockMode.REAL:
            return real_ms
        elapsed = Decimal(real_ms - self.real_anchor) * self.speed
        return self.business_anchor + int(elapsed.to_integral_value(rounding=ROUND_DOWN))


REAL = ClockState(ClockMode.REAL.value, 0, 0, D(1))


# The clock row's columns in the order `state_of` takes them (a reader joining the row names them so).
COLUMNS = ("mode", "business_anchor", "real_anchor", "speed")
_READ = f"SELECT {', '.join(COLUMNS)} FROM clock WHERE id = 1"


def read(conn: sa.Connection, *, lock: bool = False) -> ClockState:
    """The clock's state (the real clock if none was set); `lock`: locked to the transaction's end.
    Read on every write's way (`business_now`): straight through the driver (`db.direct`)."""
    locking = lock and conn.dialect.name == "postgresql"  # SQLite: one writer, no row locks
    return _state(db.direct(conn, f"{_READ} FOR UPDATE" if locking else _READ, {}))


def _state(rows: list[Any]) -> ClockState:
    return state_of(*rows[0]) if rows else REAL


def state_of(mode: str | None, business_anchor: int, real_anchor: int, speed: str | Decimal) -> ClockState:
    """The clock's state from its row's `COLUMNS` as the driver returns them (all None: no row,
    the real clock)."""
    return REAL if mode is None else ClockState(mode, business_anchor, real_anchor, exact(speed))


def business_now(conn: sa.Connection) -> int:
    return read(conn).now(wall_ms())


# `business_now`'s statement, for `db.batch`; its rows read by `now_of`.
NOW: tuple[str, dict[str, Any]] = (_READ, {})


def now_of(rows: list[Any]) -> int:
    """The business time now, from the clock's row as `NOW` read it."""
    return _state(rows).now(wall_ms())


def _write(conn: sa.Connection, state: ClockState) -> None:
    values = {
        "mode": state.mode,
        "business_anchor": state.business_anchor,
        "real_anchor": state.real_anchor,
        "speed": state.speed,
    }
    if conn.execute(sa.update(clock).where(clock.c.id == 1).values(**values)).rowcount == 0:
        conn.execute(sa.insert(clock).values(id=1, **values))


def set_simulated(conn: sa.Connection, speed: Decimal, start_ms: int | None = None) -> ClockState:
    """Switch to (or re-tune) the simulated clock, continuing from the current business time."""
    if speed < 0:
        raise InvalidParameter("speed", "must not be negative")
    real = wall_ms()
    start = read(conn, lock=True).now(real) if start_ms is None else start_ms
    state = ClockState(ClockMode.SIMULATED.value, start, real, speed)
    _write(conn, state)
    return state


def set_real(conn: sa.Connection) -> ClockState:
    current = read(conn)
    if current.mode == ClockMode.SIMULATED and current.now(wall_ms()) > wall_ms():
        raise ClockError("the simulated clock is ahead of real time; business time cannot go back")
    _write(conn, REAL)
    return REAL


def advance(conn: sa.Connection, ms: int) -> ClockState:
    current = read(conn, lock=True)
    if current.mode != ClockMode.SIMULATED:
        raise ClockError("only a simulated clock can be advanced")
    if ms < 0:
        raise InvalidParameter("hours", "the clock only moves forward")
    real = wall_ms()
    state = ClockState(ClockMode.SIMULATED.value, current.now(real) + ms, real, current.speed)
    _write(conn, state)
    return state


CLOCK_MAX_AGE_S = 1.0  # seconds an API process answers on the clock's row before reading it again


class ClockCache:
    """Business time for an API process without a query per answer: the clock's row, read again
    when older than `max_age` seconds. `now()` never touches the database (it runs on the event
    loop, e.g. for an envelope's time); `refresh()` does, so it runs where queries may (in a
    database slot). After an operator moves the clock, answers may use the old row for up to
    `max_age` seconds — twice that while a refresh is under way (`api/facade.Facade.clock_kept`);
    the time endpoints read the row itself."""

    def __init__(self, engine: sa.Engine, max_age: float = CLOCK_MAX_AGE_S) -> None:
        self._engine, self._max_age = engine, max_age
        self._state, self._read_at = REAL, float("-inf")

    def refresh(self) -> ClockState:
        if time.monotonic() - self._read_at >= self._max_age:
            with self._engine.connect() as conn:
                self._state = read(conn)
            self._read_at = time.monotonic()
        return self._state

    def state(self) -> ClockState:
        return self._state

    @property
    def max_age(self) -> float:
        return self._max_age

    def within(self, seconds: float) -> bool:
        """Whether the row was read within `seconds`."""
        return time.monotonic() - self._read_at < seconds

    def fresh(self) -> bool:
        """Whether `refresh()` would not query (the row read within `max_age`)."""
        return self.within(self._max_age)

    def now(self) -> int:
        return self._state.now(wall_ms())
