"""The migrations build the schema the code declares (adapters/tables.py), on both databases.

Alembic compares a freshly migrated database with the metadata; the differences left are the
known ones, each explained below — a new table, column or index missing from a migration (or a
migration creating one the code does not declare) fails here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.postgresql import psycopg

from flexearn.adapters import tables as t
from flexearn.adapters.db import alembic_config, make_engine, migrate


def _only_on(table: str, index: str) -> str | None:
    """The database the declared index is made on only (`Index.ddl_if`), or None: every one."""
    declared = {i.name: i for i in t.metadata.tables[table].indexes}
    condition = getattr(declared[index], "_ddl_if", None)  # autogenerate compares a copy without it
    return None if condition is None else str(condition.dialect)


def _known(diff: Any, dialect: str) -> bool:
    kind, obj = diff[0], diff[1]
    # An index declared for the other database only (`Index.ddl_if`, which autogenerate does not
    # read): lending_history's index of a user's records (migration 0016), earn_order's (0017).
    if kind == "add_index" and _only_on(obj.table.name, obj.name) not in (None, dialect):
        return True
    # PostgreSQL: lending_history's day partitions (and their indexes) are made by migration 0006
    # and by retention at run time, not declared as tables.
    table = getattr(obj, "table", obj)
    if dialect == "postgresql" and getattr(table, "name", "").startswith("lending_history_"):
        return True
    # SQLite: migration 0003 added journal_leg.holding_id in batch mode without its foreign key
    # (SQLite does not enforce foreign keys here anyway).
    return (
        dialect == "sqlite"
        and kind == "add_fk"
        and getattr(obj, "name", "") == "fk_journal_leg_holding_id_earn_holding"
    )


def test_a_migrated_database_has_the_declared_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), t.metadata)
        dialect = engine.dialect.name
        assert [d for d in diffs if not _known(d, dialect)] == []
    finally:
        engine.dispose()


def _indexes(database_url: str, table: str) -> tuple[set[str], bool]:
    """The names of `table`'s indexes on a migrated database, and whether it is SQLite."""
    engine = make_engine(database_url)
    try:
        migrate(engine)
        names = {index["name"] for index in sa.inspect(engine).get_indexes(table)}
        return names, engine.dialect.name == "sqlite"
    finally:
        engine.dispose()


def test_the_lending_history_is_indexed_by_user_as_each_database_declares(database_url: str) -> None:
    """SQLite's index of a user's records is led by the currency (0016), PostgreSQL's by the user."""
    names, sqlite = _indexes(database_url, "lending_history")
    by_user = "ix_lending_history_ccy_user_ts" if sqlite else "ix_lending_history_user_ts"
    assert names == {"ix_lending_history_ts", by_user}


def test_the_catalog_orders_are_indexed_by_user_as_each_database_declares(database_url: str) -> None:
    """SQLite's index of a user's orders is led by the product (0017), PostgreSQL's by the user."""
    names, sqlite = _indexes(database_url, "earn_order")
    assert ("ix_earn_order_product_user_ts" in names) is sqlite
    assert ("ix_earn_order_user_ts" in names) is not sqlite


def _index_sql(conn: sa.Connection, table: str) -> dict[str, str]:
    """Each of `table`'s indexes as its database wrote it down (SQLite `sqlite_master`, PostgreSQL
    `pg_indexes`), spaces and case folded."""
    if conn.dialect.name == "sqlite":
        found = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (table,),
        )
    else:
        found = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (table,)
        )
    return {name: " ".join(sql.lower().replace("(", " ").replace(")", " ").split()) for name, sql in found}


def _fillfactors(conn: sa.Connection) -> dict[str, str | None]:
    rows = conn.exec_driver_sql(
        "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
        "WHERE relname IN ('savings_position', 'earn_holding', 'ledger_account', 'journal_leg')"
    )
    return dict(rows.all())


def test_0018_makes_the_unread_entries_partial_and_leaves_room_on_postgres_pages(database_url: str) -> None:
    """The legs' position and holding indexes skip legs that are neither's, the orders' arrival index
    the settled orders; PostgreSQL's rewritten tables keep a fifth of each page free. Down again,
    every index is whole and the pages full; and up once more."""
    engine = make_engine(database_url)
    try:
        for revision, partial in (("head", True), ("0017_orders_by_product", False), ("head", True)):
            if revision == "head":
                migrate(engine)
            else:
                command.downgrade(alembic_config(engine), revision)
            with engine.connect() as conn:
                legs, orders = _index_sql(conn, "journal_leg"), _index_sql(conn, "earn_order")
                postgres = conn.dialect.name == "postgresql"
                fill = _fillfactors(conn) if postgres else {}
            for column in ("position_id", "holding_id"):
                assert legs[f"ix_journal_leg_{column}"].endswith(
                    f"{column} where {column} is not null" if partial else f"{column}"
                )
            assert orders["ix_earn_order_arrival"].endswith(
                "status, arrive_at where status ::text = 'processing'::text"
                if partial and postgres
                else "status, arrive_at where status = 'processing'"
                if partial
                else "status, arrive_at"
            )
            if postgres:
                rewritten = "fillfactor=80" if partial else None
                assert fill == {
                    "savings_position": rewritten, "earn_holding": rewritten, "ledger_account": rewritten,
                    "journal_leg": None,
                }
    finally:
        engine.dispose()


def test_the_delivery_of_redemptions_finds_them_by_the_partial_index_in_any_plan(database_url: str) -> None:
    """Its condition holds the index's predicate as literal SQL, so the index serves even a plan made
    for any value of the parameters: PostgreSQL's generic plan of a prepared statement (psycopg
    prepares a statement run often), which could not use it for `status = $1`."""
    engine = make_engine(database_url)
    try:
        migrate(engine)
        o = t.earn_order
        query = sa.select(o.c.id).where(t.PROCESSING, o.c.arrive_at <= 5).order_by(o.c.id)
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                generic = query.compile(dialect=psycopg.dialect(paramstyle="numeric_dollar"))
                conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: a scan costs nothing
                conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                conn.exec_driver_sql(f"PREPARE due AS {generic}")
                plan = conn.exec_driver_sql("EXPLAIN EXECUTE due(5)").all()
            else:
                compiled = query.compile(engine)
                params = compiled.construct_params()
                bound = tuple(params[name] for name in compiled.positiontup or ())
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", bound).all()
        assert "ix_earn_order_arrival" in " ".join(str(row) for row in plan)
    finally:
        engine.dispose()
