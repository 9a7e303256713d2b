"""Market savings: purchase, redeem, set the minimum lending rate, read positions (SPEC §2)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal

from flexearn.adapters import clock, db
from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.tables import exact
from flexearn.domain.errors import AmountTooLarge
from flexearn.domain.ledger import AccountKind, AccountRef, transfer
from flexearn.domain.market import MIN_RATE, check_rate
from flexearn.domain.money import ZERO, exact_add, plain
from flexearn.domain.settlement import PositionRow
from flexearn.services import gate
from flexearn.services.accounts import check_amount
from flexearn.services.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Position:
    ccy: str
    amt: Decimal
    loan: Decimal
    earnings: Decimal
    rate: Decimal

    @property
    def pending(self) -> Decimal:
        return self.amt - self.loan


def _enter(
    uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal | None = None
) -> tuple[PositionRow | None, int]:
    """What a trade reads before it writes, in one round trip on PostgreSQL (`db.batch`): the
    currency (`amount` checked against its precision), the market's lock and open hour
    (`gate.entering`), the user's position, locked, and the business time. Refused in that order.
    On PostgreSQL the market's lock is taken before the refusals are read: a trade refused for its
    amount's decimals waits, as a good one does, while the market's settlement holds the lock."""
    conn = uow.conn
    currency, *market, position, clock_row = db.batch(
        conn,
        [
            repo.precision_statement(ccy),
            *gate.entering(conn, ccy),
            repo.position_statement(conn, user_id, ccy, lock=True, unless=gate.unless_settling(ccy)),
            clock.NOW,
        ],
    )
    precision = repo.precision_of(ccy, currency)
    if amount is not None:
        check_amount(amount, precision)
    gate.entered(ccy, market[-1])
    return repo.position_of(position), clock.now_of(clock_row)


def _open_position(uow: UnitOfWork, user_id: int, ccy: str, now: int) -> PositionRow:
    """The user's new position, locked, at the default minimum rate (or theirs, if another
    transaction made it meanwhile)."""
    repo.insert_ignore(
        uow.conn,
        t.position,
        {
            "user_id": user_id,
            "ccy": ccy,
            "amt": ZERO,
            "loan": ZERO,
            "earnings": ZERO,
            "rate": MIN_RATE,
            "rate_seq": 0,
            "rate_set_at": now,
        },
    )
    row = repo.position(uow.conn, user_id, ccy, lock=True)
    assert row is not None
    if row.rate_seq == 0:
        repo.record_rate(uow.conn, row.id, MIN_RATE, now)
    return row


@gate.waits_for_settlement
def purchase(
    uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal, rate: Decimal | None = None
) -> Position:
    """Move `amount` from funding into savings; a given `rate` becomes the user's minimum rate.

    The money is pending until the next hourly match.
    """
    if rate is not None:
        check_rate(rate)
    with uow:
        row, now = _enter(uow, user_id, ccy, amount)
        row = row or _open_position(uow, user_id, ccy, now)
        if rate is not None:
            repo.record_rate(uow.conn, row.id, rate, now)
        savings = AccountRef.system(AccountKind.SAVINGS, ccy)
        entry = transfer(
            "purchase",
            ccy,
            AccountRef.funding(user_id, ccy),
            savings,
            amount,
            ref=f"position:{row.id}",
            position_id=row.id,
        )
        repo.post(uow.conn, entry, now)
        result = _update(uow, ccy, row, rate, amt=exact_add(row.amt, amount))
        uow.commit()
    return result


@gate.waits_for_settlement
def redeem(uow: UnitOfWork, user_id: int, ccy: str, amount: Decimal) -> Position:
    """Return `amount` to funding at once, taken from pending first, then from what is lent.

    What is taken from the lent part earns nothing for the current hour.
    """
    with uow:
        row, now = _enter(uow, user_id, ccy, amount)
        held = row.amt if row is not None else ZERO
        if row is None or amount > held:
            raise AmountTooLarge("redemption", plain(held))
        from_loan = max(ZERO, amount - (row.amt - row.loan))
        savings = AccountRef.system(AccountKind.SAVINGS, ccy)
        entry = transfer(
            "redemption",
            ccy,
            savings,
            AccountRef.funding(user_id, ccy),
            amount,
            ref=f"position:{row.id}",
            position_id=row.id,
        )
        repo.post(uow.conn, entry, now)
        result = _update(
            uow, ccy, row, None, amt=exact_add(row.amt, -amount), loan=exact_add(row.loan, -from_loan)
        )
        uow.commit()
    return result


@gate.waits_for_settlement
def set_rate(uow: UnitOfWork, user_id: int, ccy: str, rate: Decimal) -> Position:
    """Change the user's minimum lending rate; it applies from the next hourly match."""
    check_rate(rate)
    with uow:
        row, now = _enter(uow, user_id, ccy)
        row = row or _open_position(uow, user_id, ccy, now)
        repo.record_rate(uow.conn, row.id, rate, now)
        result = Position(ccy, row.amt, row.loan, row.earnings, rate)
        uow.commit()
    return result


@functools.cache
def _update_sql(names: tuple[str, ...]) -> str:
    """The UPDATE of the amounts `names` of a position."""
    return f"UPDATE savings_position SET {', '.join(f'{name} = :{name}' for name in names)} WHERE id = :id"


def _update(uow: UnitOfWork, ccy: str, row: PositionRow, rate: Decimal | None, **values: Decimal) -> Position:
    """Set `values` on the position `row` (written `db.later`, with the COMMIT's round trip); the
    position as it then is, its rate `rate` if one was just set."""
    db.later(uow.conn, _update_sql(tuple(values)), {**values, "id": row.id})
    after = {"amt": row.amt, "loan": row.loan, "earnings": row.earnings} | values
    return Position(ccy, after["amt"], after["loan"], after["earnings"], row.rate if rate is None else rate)


# One statement, read straight through the driver (`UnitOfWork.read_alone`): on the request path
# SQLAlchemy's machinery around it cost several times the query.
_POSITIONS = "SELECT ccy, amt, loan, earnings, rate FROM savings_position WHERE user_id = :user_id"
_POSITIONS_ALL = f"{_POSITIONS} ORDER BY ccy"
_POSITIONS_OF_CCY = f"{_POSITIONS} AND ccy = :ccy"


def positions(uow: UnitOfWork, user_id: int, ccy: str | None = None) -> list[Position]:
    """The user's positions by currency (of `ccy` only, if given)."""
    if ccy is None:
        rows = uow.read_alone(_POSITIONS_ALL, {"user_id": user_id})
    else:
        rows = uow.read_alone(_POSITIONS_OF_CCY, {"user_id": user_id, "ccy": ccy})
    return [Position(c, exact(a), exact(loan), exact(gain), exact(rate)) for c, a, loan, gain, rate in rows]
