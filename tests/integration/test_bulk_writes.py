"""`adapters.bulk`: what the set-based writes store is what the rows held — on PostgreSQL through
array literals unnested into rows (quotes, backslashes, NULLs, booleans, exact decimals), on
SQLite as canonical text."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from flexearn.adapters import bulk
from flexearn.adapters.db import make_engine
from flexearn.adapters.tables import Amount

metadata = sa.MetaData()
scratch = sa.Table(
    "bulk_scratch",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ref", sa.BigInteger, nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("amount", Amount, nullable=False),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("tag", sa.Text, nullable=False),
)
COLUMNS = {"id": "int", "ref": "int", "label": "text", "amount": "amount", "flag": "bool", "tag": "text"}
AWKWARD = ["tab\there", "new\nline", "back\\slash", 'quote"s', "cr\rhere", "\\N", "", "ünïcode"]
ROWS = [
    (i + 1, None if i % 3 == 0 else i * 7, None if i == 4 else label, amount, (None, True, False)[i % 3], "t")
    for i, (label, amount) in enumerate(
        zip(
            AWKWARD,
            [
                Decimal("0.000000000000000001"),
                Decimal("123456789012345678901234.5"),
                Decimal("-1.10"),
                Decimal("1E+3"),
                Decimal("0"),
                Decimal("7.000"),
                Decimal("-0.5E-7"),
                Decimal("42"),
            ],
            strict=True,
        )
    )
]


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(scratch).order_by(scratch.c.id))]


def test_insert_then_update_stores_the_rows_exactly(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        bulk.insert_many(conn, "bulk_scratch", COLUMNS, ROWS)
    assert stored(engine) == ROWS
    assert [type(row[3]) for row in stored(engine)] == [Decimal] * len(ROWS)

    changed = [(row[0], f"{row[2]}\tchanged", row[3] * 3, not row[4]) for row in ROWS[::2]]
    with engine.begin() as conn:
        bulk.update_many(
            conn, "bulk_scratch", "id", {"label": "text", "amount": "amount", "flag": "bool"}, changed
        )
        bulk.update_many(conn, "bulk_scratch", "id", {"tag": "text"}, [(2, "only")], only=("ref", 7))
    expected = {row[0]: row for row in ROWS}
    for key, label, amount, flag in changed:
        expected[key] = (key, expected[key][1], label, amount, flag, "t")
    expected[2] = (*expected[2][:5], "only")  # `only`: a column all the rows share (row 2's ref is 7)
    assert stored(engine) == sorted(expected.values())


def test_insert_ignoring_existing_keys_keeps_them(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        bulk.insert_many(conn, "bulk_scratch", COLUMNS, ROWS[:3])
        bulk.insert_many(
            conn, "bulk_scratch", COLUMNS, [(*ROWS[1][:5], "new"), *ROWS[3:]], ignore_existing=True
        )
    assert stored(engine) == ROWS


def test_amounts_must_be_decimal(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(TypeError):
        bulk.insert_many(conn, "bulk_scratch", COLUMNS, [(1, None, "x", 1.5, True, "t")])


def test_many_rows_span_several_statements(engine: sa.Engine) -> None:
    """More rows than one SQLite statement takes (`bulk.SQLITE_ROWS_PER_INSERT`), ending in a part
    of one; keys already there are kept across the statements' boundaries."""
    count = 2 * bulk.SQLITE_ROWS_PER_INSERT + 234
    rows = [
        (i, i % 7, f"label {i}", Decimal(i).scaleb(-(i % 19)), i % 2 == 0, "t") for i in range(1, count + 1)
    ]
    first = bulk.SQLITE_ROWS_PER_INSERT + 100
    with engine.begin() as conn:
        bulk.insert_many(conn, "bulk_scratch", COLUMNS, rows[:first])
        bulk.insert_many(
            conn, "bulk_scratch", COLUMNS, [(*row[:5], "new") for row in rows], ignore_existing=True
        )
    assert stored(engine) == rows[:first] + [(*row[:5], "new") for row in rows[first:]]
