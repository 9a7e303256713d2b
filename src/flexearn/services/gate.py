"""Trading waits while a period of its currency or product is settled in ranges.

A period settled by several workers (services/settlement/) is *open* between the
transaction that plans it and the one that closes it; the positions or holdings it was planned on
must not change meanwhile. Trading use cases call `check` under their market's or product's lock
before writing anything, and are wrapped in `waits_for_settlement`, which runs them again until
the period has closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.domain.errors import UnsupportedCurrency
from flexearn.domain.periods import PeriodKind

HOUR, DAY = PeriodKind.HOUR.value, PeriodKind.DAY.value  # the kinds of period (plain text keys)
# How long a trade without a request deadline (CLI, admin API) waits for an open period to close.
WAIT_S = 30.0
_POLL_S = 0.02


class PeriodOpen(db.DatabaseBusy):
    """A period of this currency or product is being settled in ranges: trading waits for it.

    A `DatabaseBusy`: a request whose budget runs out while it waits is answered "service
    unavailable" (OKX 50001, Bitget 40604), and nothing of it was written.
    """


def open_period(conn: sa.Connection, kind: str, key: str | int) -> int | None:
    """The period of `key` being settled in ranges, if any."""
    o = t.settlement_open
    found = conn.execute(sa.select(o.c.period).where(o.c.kind == kind, o.c.key == str(key)).limit(1)).scalar()
    return None if found is None else int(found)


def lock_market(conn: sa.Connection, ccy: str) -> sa.Row[Any]:
    """The market row under the trading lock (settlement of the currency waits for us), refused
    (`PeriodOpen`) while one of its hours is open."""
    row = repo.market(conn, ccy, lock="share")
    check(conn, HOUR, ccy)
    return row


# Whether the market exists and which of its hours is open (NULL: none), in one statement.
_OPEN = "SELECT period FROM settlement_open WHERE kind = :kind AND key = :ccy"
_MARKET_OPEN = f"SELECT ({_OPEN} LIMIT 1) FROM market WHERE ccy = :ccy"


def entering(conn: sa.Connection, ccy: str) -> list[tuple[str, dict[str, Any]]]:
    """For trades that need none of the market's settings (a purchase, a redemption, a rate): the
    statements of `lock_market`'s lock and its refusals, the row unread and the open-hour check in
    the same statement as the market's existence — run by the trade's `db.batch`, with what else it
    reads, and their last rows given to `entered`. The lock is a statement of its own before the
    check: under READ COMMITTED the check's snapshot is then taken once the lock is held."""
    return [*repo.market_lock(conn, ccy, "share"), (_MARKET_OPEN, {"kind": HOUR, "ccy": ccy})]


def unless_settling(ccy: str) -> tuple[str, dict[str, Any]]:
    """A condition for a trade's locking read of its position (`repo.position_statement`): no row,
    and no lock waited for, while an hour of `ccy` is being settled in ranges — a range being
    applied holds its positions' row locks; the trade is refused by `entered` instead."""
    return f" AND NOT EXISTS ({_OPEN})", {"kind": HOUR}


def entered(ccy: str, rows: list[Any]) -> None:
    """`lock_market`'s refusals (`UnsupportedCurrency`, `PeriodOpen`) from the rows of `entering`'s
    last statement."""
    if not rows:
        raise UnsupportedCurrency(ccy)
    if rows[0][0] is not None:
        raise PeriodOpen(f"{HOUR} {rows[0][0]} of {ccy} is being settled; try again shortly")


def check(conn: sa.Connection, kind: str, key: str | int) -> None:
    """Refuse (`PeriodOpen`) while a period of `key` is open."""
    found = open_period(conn, kind, key)
    if found is not None:
        raise PeriodOpen(f"{kind} {found} of {key} is being settled; try again shortly")


P = ParamSpec("P")
R = TypeVar("R")


def waits_for_settlement(use_case: Callable[P, R]) -> Callable[P, R]:
    """Run `use_case` again (a new transaction each time) while it meets an open period, until the
    request's deadline (or `WAIT_S` without one); then `PeriodOpen` goes up."""

    @wraps(use_case)
    def waiting(*args: P.args, **kwargs: P.kwargs) -> R:
        give_up = time.monotonic() + WAIT_S
        while True:
            try:
                return use_case(*args, **kwargs)
            except PeriodOpen as error:
                if db.inlined():  # on the event loop, which must not sleep: in a slot, where it may
                    raise db.refusal(db.WouldWait) from error
                left = db.seconds_left()
                if time.monotonic() + _POLL_S > give_up or (left is not None and left < 2 * _POLL_S):
                    raise
                time.sleep(_POLL_S)

    return waiting
