"""Set-based writes of many rows through the driver's cursor (settlement's hot path).

PostgreSQL: one statement over arrays (decimal text, which NUMERIC reads exactly) unnested into
rows. SQLite: the canonical text the `Amount` type writes, by `executemany` (updates) or
multi-row VALUES (inserts). Column kinds are "int", "amount" or "text".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import chain, islice, repeat
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.domain.money import plain

_PG_TYPES = {"int": "bigint", "amount": "numeric", "text": "text", "bool": "boolean"}


def _sqlite_columns(kinds: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[Iterable[Any]]:
    """The rows' columns, amounts as the canonical text the `Amount` type writes, converted a
    column at a time (a call per value, not per value and kind), lazily: the statements read the
    rows zipped from them, and no list of the converted rows is made."""
    columns: list[Iterable[Any]] = list(zip(*rows, strict=True))
    for i, kind in enumerate(kinds):
        if kind == "amount":
            if set(map(type, columns[i])) != {Decimal}:
                raise TypeError("amounts are Decimal")
            columns[i] = map(plain, columns[i])
    return columns


def _pg_array(kind: str, column: Sequence[Any]) -> str:
    """An array literal of `column` (NULL for None)."""
    if kind == "amount" and any(not isinstance(v, Decimal) for v in column):
        raise TypeError("amounts are Decimal")
    if kind == "text":
        quoted = (
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in column
        )
        return "{" + ",".join(quoted) + "}"
    if kind == "bool":
        return "{" + ",".join("NULL" if v is None else "t" if v else "f" for v in column) + "}"
    return "{" + ",".join("NULL" if v is None else str(v) for v in column) + "}"


def update_many(
    conn: sa.Connection,
    table: str,
    key: str,
    columns: dict[str, str],
    rows: Sequence[tuple[Any, ...]],
    *,
    only: tuple[str, Any] | None = None,
) -> None:
    """UPDATE table SET columns… WHERE key = row[0], for each row (key first, then `columns` in order).

    `only` = (column, value) that every row shares (e.g. its currency) lets PostgreSQL find the
    rows through that column rather than joining against the whole table. It is a hint, not a
    filter: SQLite finds each row by its key alone, so every row must already share it.
    """
    if not rows:
        return
    names = list(columns)
    cursor = db.cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            kinds = ["int", *columns.values()]
            arrays: list[Any] = [
                _pg_array(kind, col) for kind, col in zip(kinds, zip(*rows, strict=True), strict=True)
            ]
            unnest = ", ".join(f"%s::{_PG_TYPES[kind]}[]" for kind in kinds)
            sets = ", ".join(f"{n} = v.{n}" for n in names)
            sql = (
                f"UPDATE {table} AS t SET {sets} FROM unnest({unnest}) AS v({key}, {', '.join(names)}) "
                f"WHERE t.{key} = v.{key}"
            )
            if only is not None:
                sql += f" AND t.{only[0]} = %s"
                arrays.append(only[1])
            cursor.execute(sql, arrays)
        else:
            sets = ", ".join(f"{n} = ?" for n in names)
            keys, *values = _sqlite_columns(["int", *columns.values()], rows)
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {key} = ?", zip(*values, keys, strict=True))
    finally:
        cursor.close()


def insert_many(
    conn: sa.Connection,
    table: str,
    columns: dict[str, str],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore_existing: bool = False,
) -> None:
    """INSERT the rows (`columns` in order); `ignore_existing`: skip those a unique key already holds."""
    if not rows:
        return
    names, kinds = list(columns), list(columns.values())
    conflict = " ON CONFLICT DO NOTHING" if ignore_existing else ""
    cursor = db.cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            arrays = [_pg_array(kind, col) for kind, col in zip(kinds, zip(*rows, strict=True), strict=True)]
            unnest = ", ".join(f"%s::{_PG_TYPES[kind]}[]" for kind in kinds)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({unnest}){conflict}", arrays
            )
        else:
            sqlite_insert(cursor, table, names, zip(*_sqlite_columns(kinds, rows), strict=True), conflict)
    finally:
        cursor.close()


# Rows per INSERT on SQLite: a multi-row VALUES binds them all and runs once, about half the cost
# of `executemany` running the statement row by row. 500: SQLite's historical bound on the terms
# of a compound SELECT, which a VALUES list once counted against.
SQLITE_ROWS_PER_INSERT = 500


def sqlite_insert(
    cursor: Any, table: str, names: Sequence[str], rows: Iterable[tuple[Any, ...]], conflict: str = ""
) -> None:
    """INSERT `rows` (values of `names`, in order, as the SQLite driver binds them) in statements of
    `SQLITE_ROWS_PER_INSERT` rows (fewer if the bound-parameter limit requires); `conflict`: a
    clause after the VALUES (" ON CONFLICT DO NOTHING")."""
    width = len(names)
    bound = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(SQLITE_ROWS_PER_INSERT, bound // width))
    head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
    row = "(" + ", ".join("?" * width) + ")"
    full = head + ", ".join(repeat(row, per)) + conflict
    remaining = iter(rows)
    while values := list(chain.from_iterable(islice(remaining, per))):
        count = len(values) // width
        cursor.execute(full if count == per else head + ", ".join(repeat(row, count)) + conflict, values)
