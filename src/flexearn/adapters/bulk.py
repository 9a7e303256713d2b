"""Set-based writes of many rows through the driver's cursor (settlement's hot path).

PostgreSQL: the rows stream in by `COPY … FROM STDIN` (text format; amounts as decimal text,
which NUMERIC reads exactly) — straight into the table for an insert, into a temporary table for
an update (then one `UPDATE … FROM` it) or an insert that skips existing keys. SQLite: one
`executemany` of the canonical text the `Amount` type writes. Column kinds are "int", "amount",
"text" or "bool".
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from flexearn.domain.money import plain

_PG_TYPES = {"int": "bigint", "amount": "numeric", "text": "text", "bool": "boolean"}
_STAGED = "flexearn_bulk_rows"  # the temporary table of an update; dropped by the statement's end
# COPY's text format: these characters in a value are written as backslash escapes
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _checked(kinds: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The rows' columns, after checking that every amount is a Decimal."""
    columns: list[Any] = list(zip(*rows, strict=True))
    for kind, column in zip(kinds, columns, strict=True):
        if kind == "amount" and set(map(type, column)) != {Decimal}:
            raise TypeError("amounts are Decimal")
    return columns


def _sqlite_columns(kinds: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The rows' columns, amounts as the canonical text the `Amount` type writes, converted a
    column at a time (a call per value, not per value and kind)."""
    columns = _checked(kinds, rows)
    for i, kind in enumerate(kinds):
        if kind == "amount":
            columns[i] = map(plain, columns[i])
    return columns


def _copy_text(kinds: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows in COPY's text format: a line per row, tab-separated, `\\N` for NULL; decimal
    text for amounts (`str`, as exact as the Decimal), `t`/`f` for booleans, text escaped."""
    columns = _checked(kinds, rows)
    mapped = False
    for i, kind in enumerate(kinds):
        if kind == "text":
            texts = {v: "\\N" if v is None else str(v).translate(_COPY_ESCAPES) for v in set(columns[i])}
            if all(k == v for k, v in texts.items()):  # no NULL, nothing to escape
                continue
            columns[i] = map(texts.__getitem__, columns[i])
        elif kind == "bool":
            columns[i] = ["\\N" if v is None else "t" if v else "f" for v in columns[i]]
        elif type(None) in set(map(type, columns[i])):  # not `None in`: Decimal's == is slow
            columns[i] = ["\\N" if v is None else v for v in columns[i]]
        else:
            continue
        mapped = True
    line = "\t".join(["%s"] * len(kinds)) + "\n"
    return "".join([line % row for row in (zip(*columns, strict=True) if mapped else rows)])


def _copy_in(
    cursor: Any, table: str, names: Sequence[str], kinds: Sequence[str], rows: Sequence[Any]
) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        copy.write(_copy_text(kinds, rows))


def _stage(cursor: Any, names: Sequence[str], kinds: Sequence[str], rows: Sequence[Any]) -> None:
    """The rows in the temporary table `_STAGED` (the caller drops it)."""
    columns = ", ".join(f"{n} {_PG_TYPES[kind]}" for n, kind in zip(names, kinds, strict=True))
    cursor.execute(f"CREATE TEMPORARY TABLE {_STAGED} ({columns}) ON COMMIT DROP")
    _copy_in(cursor, _STAGED, names, kinds, rows)


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
    rows through that column rather than joining against the whole table.
    """
    if not rows:
        return
    names, kinds = [key, *columns], ["int", *columns.values()]
    cursor = _cursor(conn)
    try:
        if conn.dialect.name == "postgresql":
            _stage(cursor, names, kinds, rows)
            sets = ", ".join(f"{n} = v.{n}" for n in columns)
            sql = f"UPDATE {table} AS t SET {sets} FROM {_STAGED} AS v WHERE t.{key} = v.{key}"
            if only is not None:
                sql += f" AND t.{only[0]} = %s"
            cursor.execute(sql, [] if only is None else [only[1]])
            cursor.execute(f"DROP TABLE {_STAGED}")
        else:
            sets = ", ".join(f"{n} = ?" for n in columns)
            key_column, *values = _sqlite_columns(kinds, rows)  # the key binds last
            cursor.executemany(
                f"UPDATE {table} SET {sets} WHERE {key} = ?", list(zip(*values, key_column, strict=True))
            )
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
    cursor = _cursor(conn)
    try:
        if conn.dialect.name != "postgresql":
            conflict = " ON CONFLICT DO NOTHING" if ignore_existing else ""
            marks = ", ".join("?" for _ in names)
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}){conflict}",
                list(zip(*_sqlite_columns(kinds, rows), strict=True)),
            )
        elif ignore_existing:
            _stage(cursor, names, kinds, rows)
            listed = ", ".join(names)
            cursor.execute(
                f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {_STAGED} ON CONFLICT DO NOTHING"
            )
            cursor.execute(f"DROP TABLE {_STAGED}")
        else:
            _copy_in(cursor, table, names, kinds, rows)
    finally:
        cursor.close()


def _cursor(conn: sa.Connection) -> Any:
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    return dbapi.cursor()
