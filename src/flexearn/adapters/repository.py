"""Reads and writes of the engine's rows, on a SQLAlchemy connection inside a transaction.

Row locks (`FOR UPDATE`/`FOR SHARE`) matter on PostgreSQL; SQLite has one writer at a time
(every transaction begins IMMEDIATE) and SQLAlchemy leaves the lock clauses out there.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flexearn.adapters import bulk, db
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.domain.catalog_day import HoldingRow
from flexearn.domain.errors import InsufficientBalance, NotFound, UnsupportedCurrency
from flexearn.domain.ledger import AccountRef, Entry
from flexearn.domain.money import ZERO, exact_add, plain
from flexearn.domain.settlement import PositionRow


def insert_ignore(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT that does nothing if a unique key already holds the row."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())


# --- currencies and users -------------------------------------------------------------------


_PRECISION = "SELECT precision, enabled FROM currency WHERE ccy = :ccy"


def currency_precision(conn: sa.Connection, ccy: str) -> int:
    return precision_of(ccy, db.direct(conn, *precision_statement(ccy)))


def precision_statement(ccy: str) -> tuple[str, dict[str, Any]]:
    """`currency_precision`'s statement, for `db.batch`; its rows read by `precision_of`."""
    return _PRECISION, {"ccy": ccy}


def precision_of(ccy: str, rows: list[Any]) -> int:
    """The precision of an enabled currency, from `precision_statement`'s rows."""
    if not rows or not rows[0][1]:
        raise UnsupportedCurrency(ccy)
    return int(rows[0][0])


def user_id_by_name(conn: sa.Connection, name: str) -> int:
    found = conn.execute(sa.select(t.user.c.id).where(t.user.c.name == name)).scalar()
    if found is None:
        raise NotFound(f"no user named {name!r}", param="user")
    return int(found)


# --- ledger ------------------------------------------------------------------------------------


# The statements of `post`, for both databases (`db.direct`); a user account is read locked.
_ACCOUNT = "SELECT id FROM ledger_account WHERE key = :key"
_USER_ACCOUNT = {
    "sqlite": "SELECT id, balance FROM ledger_account WHERE key = :key",  # one writer: no row locks
    "postgresql": "SELECT id, balance FROM ledger_account WHERE key = :key FOR UPDATE",
}
_SET_BALANCE = "UPDATE ledger_account SET balance = :balance WHERE id = :id"
_ENTRY = (
    "INSERT INTO journal_entry (ccy, kind, ref, ts, created_at) "
    "VALUES (:ccy, :kind, :ref, :ts, :created_at) RETURNING id"
)


@functools.cache
def _legs_insert(n: int) -> str:
    """The INSERT of an entry's `n` legs, one statement (one round trip) for them all."""
    rows = (f"(:entry_id, :account{i}, :ccy, :amount{i}, :position{i}, :holding{i})" for i in range(n))
    columns = "entry_id, account_id, ccy, amount, position_id, holding_id"
    return f"INSERT INTO journal_leg ({columns}) VALUES {', '.join(rows)}"


def account_id(conn: sa.Connection, ref: AccountRef) -> int:
    """The id of the account `ref`, made (a user's at a zero balance) if missing."""
    rows = db.direct(conn, _ACCOUNT, {"key": ref.key})
    if rows:
        return int(rows[0][0])
    insert_ignore(
        conn,
        t.account,
        {
            "key": ref.key,
            "kind": ref.kind.value,
            "ccy": ref.ccy,
            "user_id": ref.user_id,
            "balance": ZERO if ref.kind.user_owned else None,
        },
    )
    return int(db.direct(conn, _ACCOUNT, {"key": ref.key})[0][0])


def _lock_user_account(conn: sa.Connection, ref: AccountRef) -> tuple[int, Decimal]:
    """(id, balance) of a user account, locked to the end of the transaction; made if missing."""
    sql = _USER_ACCOUNT[conn.dialect.name]
    rows = db.direct(conn, sql, {"key": ref.key})
    if not rows:
        account_id(conn, ref)
        rows = db.direct(conn, sql, {"key": ref.key})
    return _user_account(rows)


def _user_account(rows: list[Any]) -> tuple[int, Decimal]:
    """(id, balance) of a user account from the row `_USER_ACCOUNT` read."""
    ((found, balance),) = rows
    return int(found), ZERO if balance is None else t.exact(balance)


_BALANCE = "SELECT balance FROM ledger_account WHERE key = :key"


def balance(conn: sa.Connection, ref: AccountRef, *, lock: bool = False) -> Decimal:
    """The account's balance (zero if it has none yet); `lock`: locked to the end of the transaction
    (on PostgreSQL; SQLite has one writer). Read on trades' way: straight through the driver."""
    locking = lock and conn.dialect.name == "postgresql"
    rows = db.direct(conn, f"{_BALANCE} FOR UPDATE" if locking else _BALANCE, {"key": ref.key})
    return t.exact(rows[0][0]) if rows and rows[0][0] is not None else ZERO


# An entry moving more user balances than this (a day of catalog interest paid to every holder's
# funding account) is posted set-based, by `post_many`.
MANY_USER_LEGS = 64
KEY_CHUNK = 500  # keys per SELECT … IN (…): under SQLite's limit on bound parameters
LEG_COLUMNS = {
    "entry_id": "int",
    "account_id": "int",
    "ccy": "text",
    "amount": "amount",
    "position_id": "int",
    "holding_id": "int",
}


def post(conn: sa.Connection, entry: Entry, ts: int) -> int:
    """Write a balanced entry and move the materialised balances of the user accounts it touches.

    User balances are locked in key order, so concurrent entries never deadlock on them (a user's
    first account in a currency is made and locked after the others, as `post_many` does). The
    entry, the locks and the other accounts' ids are one `db.batch` (one round trip on PostgreSQL);
    the balances and the legs are written `db.later`, with the transaction's next statement.
    """
    user_legs = [leg for leg in entry.legs if leg.account.kind.user_owned]
    if len(user_legs) > MANY_USER_LEGS:
        return post_many(conn, [entry], ts)[0]
    refs = {leg.account.key: leg.account for leg in entry.legs}
    moves: dict[str, Decimal] = {}
    for leg in user_legs:
        moves[leg.account.key] = exact_add(moves.get(leg.account.key, ZERO), leg.amount)
    users = sorted(moves)
    others = [key for key in refs if key not in moves]
    entry_row = {"ccy": entry.ccy, "kind": entry.kind, "ref": entry.ref, "ts": ts, "created_at": wall_ms()}
    lock = _USER_ACCOUNT[conn.dialect.name]
    accounts = [*((lock, {"key": key}) for key in users), *((_ACCOUNT, {"key": key}) for key in others)]
    ((entry_id,),), *found = db.batch(conn, [(_ENTRY, entry_row), *accounts])
    ids: dict[str, int] = {}
    for key, rows in zip(users, found[: len(users)], strict=True):
        ids[key], current = _user_account(rows) if rows else _lock_user_account(conn, refs[key])
        _refuse_negative(refs[key], current, moves[key], entry.ccy)
        new = exact_add(current, moves[key])  # as the ledger check sums the legs: exactly
        db.later(conn, _SET_BALANCE, {"balance": new, "id": ids[key]})
    for key, rows in zip(others, found[len(users) :], strict=True):
        ids[key] = rows[0][0] if rows else account_id(conn, refs[key])
    legs: dict[str, Any] = {"entry_id": entry_id, "ccy": entry.ccy}
    for i, leg in enumerate(entry.legs):
        legs |= {
            f"account{i}": ids[leg.account.key],
            f"amount{i}": leg.amount,
            f"position{i}": leg.position_id,
            f"holding{i}": leg.holding_id,
        }
    db.later(conn, _legs_insert(len(entry.legs)), legs)
    return int(entry_id)


def post_many(conn: sa.Connection, entries: Sequence[Entry], ts: int) -> list[int]:
    """`post` for many entries at once, set-based: the user accounts they move are made if missing
    (one statement), locked in key order a chunk at a time, refused if any would go negative, and
    written by one statement; then the entries and all their legs. The entries' ids, in order."""
    if not entries:
        return []
    keyed = [[(leg.account.key, leg) for leg in entry.legs] for entry in entries]  # each key made once
    refs: dict[str, AccountRef] = {}
    moves: dict[str, Decimal] = {}
    for legs_of in keyed:
        for key, leg in legs_of:
            refs[key] = leg.account
            if leg.account.kind.user_owned:
                moves[key] = exact_add(moves.get(key, ZERO), leg.amount)
    keys = sorted(moves)
    found = _lock_user_accounts(conn, keys)
    missing = [key for key in keys if key not in found]
    if missing:  # users' first balances in the currency
        _make_user_accounts(conn, [refs[key] for key in missing])
        found |= _lock_user_accounts(conn, missing)
    for key in keys:
        _refuse_negative(refs[key], found[key][1], moves[key], refs[key].ccy)
    moved = [(found[key][0], exact_add(found[key][1], moves[key])) for key in keys]
    bulk.update_many(conn, "ledger_account", "id", {"balance": "amount"}, moved)
    ids = {key: row[0] for key, row in found.items()}
    ids |= {key: account_id(conn, ref) for key, ref in refs.items() if key not in ids}
    created = wall_ms()
    entry_ids = list(
        conn.execute(
            sa.insert(t.journal_entry).returning(t.journal_entry.c.id, sort_by_parameter_order=True),
            [{"ccy": e.ccy, "kind": e.kind, "ref": e.ref, "ts": ts, "created_at": created} for e in entries],
        ).scalars()
    )
    legs = [
        (entry_id, ids[key], entry.ccy, leg.amount, leg.position_id, leg.holding_id)
        for entry_id, entry, legs_of in zip(entry_ids, entries, keyed, strict=True)
        for key, leg in legs_of
    ]
    bulk.insert_many(conn, "journal_leg", LEG_COLUMNS, legs)
    return [int(i) for i in entry_ids]


def _refuse_negative(account: AccountRef, current: Decimal, amount: Decimal, ccy: str) -> None:
    if exact_add(current, amount) < 0:
        raise InsufficientBalance(f"{account.kind.value} {current} {ccy}, needs {-amount}")


def _make_user_accounts(conn: sa.Connection, refs: Sequence[AccountRef]) -> None:
    """The user accounts of `refs` that do not exist yet, at a zero balance, in one statement."""
    rows = [(ref.key, ref.kind.value, ref.ccy, ref.user_id, ZERO) for ref in refs]
    columns = {"key": "text", "kind": "text", "ccy": "text", "user_id": "int", "balance": "amount"}
    bulk.insert_many(conn, "ledger_account", columns, rows, ignore_existing=True)


def _lock_user_accounts(conn: sa.Connection, keys: Sequence[str]) -> dict[str, tuple[int, Decimal]]:
    """(id, balance) of each user account of `keys` (sorted), locked in key order: on PostgreSQL in
    one statement over an array of keys, on SQLite (one writer, no row locks) a chunk at a time."""
    if conn.dialect.name == "postgresql":
        a = t.account
        query = sa.select(a.c.id, a.c.key, a.c.balance).order_by(a.c.key)
        keys_array = sa.bindparam("keys", list(keys), type_=postgresql.ARRAY(sa.String))
        rows = conn.execute(query.where(a.c.key == sa.any_(keys_array)).with_for_update()).all()
        return {key: (account, balance) for account, key, balance in rows}
    found: dict[str, tuple[int, Decimal]] = {}
    for start in range(0, len(keys), KEY_CHUNK):  # through the driver: a day reads every holder's
        chunk = keys[start : start + KEY_CHUNK]
        marks = ", ".join(f":k{i}" for i in range(len(chunk)))
        sql = f"SELECT id, key, balance FROM ledger_account WHERE key IN ({marks}) ORDER BY key"
        rows = db.direct(conn, sql, {f"k{i}": key for i, key in enumerate(chunk)})
        found |= {key: (account, t.exact(balance)) for account, key, balance in rows}
    return found


# --- markets and positions ---------------------------------------------------------------------


def market(conn: sa.Connection, ccy: str, *, lock: str | None = None) -> sa.Row[Any]:
    """The market row; `lock` is "share" (trading) or "update" (settlement), held to the end of
    the transaction.

    On PostgreSQL the lock is a transaction advisory lock, not a row lock: PostgreSQL lets new
    FOR SHARE lockers overtake a waiting FOR UPDATE, so a steady stream of trades would starve
    settlement; advisory locks queue fairly, so trades arriving after a waiting settlement wait
    behind it. (SQLite has one writer at a time anyway.)
    """
    if lock is not None:
        lock_market(conn, ccy, lock)
    row = conn.execute(sa.select(t.market).where(t.market.c.ccy == ccy)).first()
    if row is None:
        raise UnsupportedCurrency(ccy)
    return row


_POSITION = (
    "SELECT id, user_id, amt, loan, earnings, rate, rate_seq FROM savings_position "
    "WHERE user_id = :user_id AND ccy = :ccy"
)


_MARKET_LOCKS = {
    "share": "SELECT pg_advisory_xact_lock_shared(hashtext(:key))",
    "update": "SELECT pg_advisory_xact_lock(hashtext(:key))",
}


def lock_market(conn: sa.Connection, ccy: str, lock: str) -> None:
    """The market's lock as `market` takes it (on PostgreSQL; SQLite has one writer), alone."""
    for statement in market_lock(conn, ccy, lock):
        db.direct(conn, *statement)


def market_lock(conn: sa.Connection, ccy: str, lock: str) -> list[tuple[str, dict[str, Any]]]:
    """`lock_market`'s statement (none on SQLite), for `db.batch`."""
    if conn.dialect.name == "postgresql":
        return [(_MARKET_LOCKS[lock], {"key": f"flexearn.market:{ccy}"})]
    return []


def position(conn: sa.Connection, user_id: int, ccy: str, *, lock: bool = False) -> PositionRow | None:
    """The user's position in `ccy`, if any; `lock`: locked to the end of the transaction."""
    return position_of(db.direct(conn, *position_statement(conn, user_id, ccy, lock=lock)))


def position_statement(
    conn: sa.Connection,
    user_id: int,
    ccy: str,
    *,
    lock: bool = False,
    unless: tuple[str, dict[str, Any]] = ("", {}),
) -> tuple[str, dict[str, Any]]:
    """`position`'s statement, for `db.batch`; its rows read by `position_of`. `unless`: a further
    condition (` AND …`) and its parameters, e.g. `gate.unless_settling`: no row, and no lock
    waited for, while it holds."""
    condition, more = unless
    locking = lock and conn.dialect.name == "postgresql"  # SQLite: one writer, no row locks
    sql = f"{_POSITION}{condition} FOR UPDATE" if locking else f"{_POSITION}{condition}"
    return sql, {"user_id": user_id, "ccy": ccy, **more}


def position_of(rows: list[Any]) -> PositionRow | None:
    """The position `position_statement` read, if any."""
    if not rows:
        return None
    pid, uid, amt, loan, earnings, rate, seq = rows[0]
    return PositionRow(pid, uid, t.exact(amt), t.exact(loan), t.exact(earnings), t.exact(rate), seq)


_RATE_SETTING = (
    "INSERT INTO rate_setting (position_id, rate, ts) VALUES (:position_id, :rate, :ts) RETURNING id"
)
_POSITION_RATE = "UPDATE savings_position SET rate = :rate, rate_seq = :seq, rate_set_at = :ts WHERE id = :id"
# Both in one statement, where the database lets an INSERT feed an UPDATE.
_RECORD_RATE = (
    f"WITH setting AS ({_RATE_SETTING}) UPDATE savings_position SET rate = :rate,"
    " rate_seq = (SELECT id FROM setting), rate_set_at = :ts WHERE id = :position_id"
)


def record_rate(conn: sa.Connection, position_id: int, rate: Decimal, ts: int) -> None:
    """Log a rate setting; its id orders equal rates first come, first served, as the position's
    `rate_seq`. Straight through the driver: a purchase with a rate sets one, and SQLAlchemy's
    construction of these statements cost more than the rest of the purchase's statements
    together. On PostgreSQL one statement, written `db.later` (with the next round trip)."""
    params = {"position_id": position_id, "rate": rate, "ts": ts}
    if conn.dialect.name == "postgresql":
        db.later(conn, _RECORD_RATE, params)
        return
    ((seq,),) = db.direct(conn, _RATE_SETTING, params)
    db.direct(conn, _POSITION_RATE, {"rate": rate, "seq": seq, "ts": ts, "id": position_id})


def last_settled_hour(conn: sa.Connection, ccy: str) -> int | None:
    value = conn.execute(
        sa.select(sa.func.max(t.market_hour.c.hour)).where(t.market_hour.c.ccy == ccy)
    ).scalar()
    return None if value is None else int(value)


def market_hour(conn: sa.Connection, ccy: str, hour: int) -> sa.Row[Any] | None:
    query = sa.select(t.market_hour).where(t.market_hour.c.ccy == ccy, t.market_hour.c.hour == hour)
    return conn.execute(query).first()


def positions_for_settlement(
    conn: sa.Connection, ccy: str, *, users: tuple[int | None, int | None] = (None, None)
) -> list[PositionRow]:
    """(id, user_id, amt, loan, earnings, rate, rate_seq) of every position in `ccy` (of the users
    with ids in [users[0], users[1]), a bound of None being open).

    Settlement's hot path reads through the driver's cursor, without SQLAlchemy's per-row and
    per-value processing: psycopg returns NUMERIC as Decimal, SQLite's canonical text is parsed
    here exactly as the `Amount` type parses it.
    """
    columns = "id, user_id, amt, loan, earnings, rate, rate_seq"
    cursor = db.cursor(conn)
    try:
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        where, values = f"ccy = {mark}", [ccy]
        for op, bound in zip((">=", "<"), users, strict=True):
            if bound is not None:
                where += f" AND user_id {op} {mark}"
                values.append(str(bound))
        cursor.execute(f"SELECT {columns} FROM savings_position WHERE {where}", values)
        if conn.dialect.name == "postgresql":
            return list(map(PositionRow._make, cursor.fetchall()))
        dec, make = Decimal, PositionRow._make
        return [
            make((pid, uid, dec(amt), dec(loan), dec(earned), dec(rate), seq))
            for pid, uid, amt, loan, earned, rate, seq in cursor.fetchall()
        ]
    finally:
        cursor.close()


def update_positions(
    conn: sa.Connection, rows: Sequence[tuple[int, Decimal, Decimal, Decimal]], *, ccy: str | None = None
) -> None:
    """Set (id, amt, earnings, loan) of many positions in one statement (see `bulk.update_many`);
    `ccy`, when every position is in that currency, narrows PostgreSQL's search to it."""
    bulk.update_many(
        conn, "savings_position", "id", POSITION_AMOUNTS, rows, only=None if ccy is None else ("ccy", ccy)
    )


POSITION_AMOUNTS = {"amt": "amount", "earnings": "amount", "loan": "amount"}


def insert_lending_history(
    conn: sa.Connection, ccy: str, ts: int, rate: Decimal, rows: Iterable[tuple[int, int, Decimal, Decimal]]
) -> None:
    """History rows (user_id, position_id, amt lent, earnings) of `ccy` for the hour from `ts`, at `rate`.

    Through the driver's cursor, binding the columns every row shares once.
    """
    columns = list(zip(*rows, strict=True))
    if not columns:
        return
    user_ids, position_ids, amts, earnings = columns
    if type(rate) is not Decimal or any(set(map(type, column)) != {Decimal} for column in (amts, earnings)):
        raise TypeError("amounts are Decimal")
    cursor = db.cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(
                "INSERT INTO lending_history (user_id, position_id, ccy, ts, amt, earnings, rate) "
                "SELECT v.user_id, v.position_id, %s, %s, v.amt, v.earnings, %s "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[]) "
                "AS v(user_id, position_id, amt, earnings)",
                [ccy, ts, rate, *("{" + ",".join(map(str, column)) + "}" for column in columns)],
            )
        else:
            n = len(user_ids)
            values = zip(
                user_ids,
                position_ids,
                repeat(ccy, n),
                repeat(ts, n),
                map(plain, amts),
                map(plain, earnings),
                repeat(plain(rate), n),
                strict=True,
            )
            names = ("user_id", "position_id", "ccy", "ts", "amt", "earnings", "rate")
            bulk.sqlite_insert(cursor, "lending_history", names, values)
    finally:
        cursor.close()


def holdings_for_settlement(
    conn: sa.Connection,
    product_id: int,
    users: tuple[int | None, int | None],
    *,
    expiring_by: int | None = None,
) -> list[HoldingRow]:
    """The open holdings of a product (of the users with ids in [users[0], users[1]), a bound of None
    being open; only those expiring by `expiring_by` if given), through the driver's cursor as
    `positions_for_settlement` reads positions."""
    postgres = conn.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    where, values = f"product_id = {mark} AND open = {'true' if postgres else '1'}", [product_id]
    for op, bound in zip((">=", "<"), users, strict=True):
        if bound is not None:
            where += f" AND user_id {op} {mark}"
            values.append(bound)
    if expiring_by is not None:
        where += f" AND expire_time IS NOT NULL AND expire_time <= {mark}"
        values.append(expiring_by)
    columns = "id, user_id, amount, accrued, total_profit, interest_time, expire_time"
    cursor = db.cursor(conn)
    try:
        cursor.execute(f"SELECT {columns} FROM earn_holding WHERE {where}", values)
        if postgres:
            return list(map(HoldingRow._make, cursor.fetchall()))
        dec = Decimal
        return [
            HoldingRow(hid, uid, dec(amount), dec(accrued), dec(profit), since, until)
            for hid, uid, amount, accrued, profit, since, until in cursor.fetchall()
        ]
    finally:
        cursor.close()
