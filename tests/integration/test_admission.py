""""Service unavailable" means nothing was written: a request's late COMMIT is refused, and an
answer waits for a COMMIT already sent instead of claiming nothing happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flexearn.adapters import db
from flexearn.api.admission import GRACE_S, Admission
from flexearn.services.unit_of_work import UnitOfWork


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE written (n INTEGER)")
    yield engine
    engine.dispose()


def _write(engine: sa.Engine, n: int, sleep_before_commit: float = 0.0) -> int:
    with UnitOfWork(engine) as uow:
        uow.conn.exec_driver_sql(f"INSERT INTO written VALUES ({n})")
        time.sleep(sleep_before_commit)
        uow.commit()
    return n


def _rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT n FROM written ORDER BY n")]


def test_a_commit_after_the_budget_is_refused_and_answered_unavailable(engine: sa.Engine) -> None:
    admission = Admission(slots=2, queue_timeout=0.1, timeout=0.2)

    async def request() -> int:
        return await admission.run(admission.budget(), _write, engine, 1, 0.4)

    with pytest.raises(db.DatabaseBusy):
        asyncio.run(request())
    assert _rows(engine) == []


def test_an_answer_waits_for_a_commit_already_sent(engine: sa.Engine) -> None:
    """A COMMIT that began inside the budget but ends long after it: the answer is its result."""
    admission = Admission(slots=2, queue_timeout=0.1, timeout=0.2)
    slow = 0.2 + GRACE_S + 0.5

    @event.listens_for(engine, "commit")  # the unit of work was allowed to commit: it is on its way
    def _slow_commit(connection: sa.Connection) -> None:
        time.sleep(slow)

    async def request() -> tuple[int, float]:
        started = time.monotonic()
        result = await admission.run(admission.budget(), _write, engine, 2)
        return result, time.monotonic() - started

    result, took = asyncio.run(request())
    assert result == 2
    assert took >= slow  # it waited past the budget and its grace, for the outcome
    assert _rows(engine) == [2]


def test_work_within_the_budget_commits(engine: sa.Engine) -> None:
    admission = Admission(slots=2, queue_timeout=0.1, timeout=2.0)

    async def request() -> int:
        return await admission.run(admission.budget(), _write, engine, 3)

    assert asyncio.run(request()) == 3
    assert _rows(engine) == [3]


def test_a_database_failure_after_a_commit_is_an_unknown_outcome_not_unavailable(engine: sa.Engine) -> None:
    """E.g. the connection dies during COMMIT: the write may be in; "unavailable" would deny it."""
    admission = Admission(slots=2, queue_timeout=0.1, timeout=2.0)

    def write_then_lose_the_database() -> None:
        _write(engine, 4)
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    def lose_the_database_before_any_commit() -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    async def request(fn: Callable[[], None]) -> None:
        await admission.run(admission.budget(), fn)

    with pytest.raises(RuntimeError, match="outcome unknown"):
        asyncio.run(request(write_then_lose_the_database))
    with pytest.raises(sa.exc.OperationalError):  # nothing was committed: "unavailable" is true
        asyncio.run(request(lose_the_database_before_any_commit))
    assert _rows(engine) == [4]


def test_a_commit_known_not_to_have_taken_takes_back_only_itself() -> None:
    """Two outcome COMMITs sent, one then known not to have taken: the request's outcome is still
    the other's, so its answer may not give up; once both are taken back, it may."""
    deadline = db.Deadline(time.monotonic() + 5)
    deadline.may_commit()
    deadline.may_commit()
    deadline.did_not_commit()
    assert deadline.committed
    assert not deadline.give_up()
    deadline.did_not_commit()
    assert not deadline.committed
    assert deadline.give_up()


def _settings(conn: sa.Connection) -> tuple[str, ...]:
    names = ("statement_timeout", "lock_timeout", "transaction_isolation", "transaction_read_only")
    settings = ", ".join(f"current_setting('{name}')" for name in names)
    return tuple(conn.exec_driver_sql(f"SELECT {settings}").one())


@pytest.mark.postgres
def test_a_unit_of_work_under_a_deadline_gets_its_time_left_as_timeouts_and_the_pool_keeps_none(
    postgres_url: str,
) -> None:
    """On PostgreSQL a transaction begun under a deadline runs with statement and lock timeouts of
    the time left, in the isolation its unit of work asks for; they end with it."""
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with db.deadline(db.Deadline(time.monotonic() + 5)):
            with UnitOfWork(engine) as uow:
                assert _settings(uow.conn)[2:] == ("read committed", "off")
            with UnitOfWork(engine, read_only=True) as uow:
                statement, lock, isolation, read_only = _settings(uow.conn)
                assert (isolation, read_only) == ("repeatable read", "on")
                with pytest.raises(db.ReadOnlyViolation):
                    uow.conn.exec_driver_sql("CREATE TABLE refused (n INTEGER)")
        assert statement == lock
        assert 4000 < int(statement.removesuffix("ms")) <= 5000
        with UnitOfWork(engine) as uow:  # the same pooled connection, no deadline: no timeouts
            assert _settings(uow.conn)[:2] == ("0", "0")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_under_a_deadline_begin_and_timeouts_go_with_the_first_statement_and_later_transactions_are_psycopgs(
    postgres_url: str,
) -> None:
    """A trade's BEGIN, its timeouts and its first reads are one query (one round trip): the server
    saw them as one. The connection, back in the pool, begins a transaction without a deadline as
    psycopg does: its statements are undone by a rollback, not each committed on its own."""
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    watcher = db.make_engine(postgres_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS kept (n INTEGER)")
            conn.exec_driver_sql("DELETE FROM kept")
        with db.deadline(db.Deadline(time.monotonic() + 5)), UnitOfWork(engine) as uow:
            ((pid, timeout),) = db.batch(
                uow.conn, [("SELECT pg_backend_pid(), current_setting('statement_timeout')", {})]
            )[0]
            with watcher.connect() as other:
                sent = other.execute(
                    sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ).scalar_one()
            uow.conn.exec_driver_sql("INSERT INTO kept VALUES (1)")
            uow.commit()
        assert sent.startswith("BEGIN; SELECT set_config('statement_timeout', '")
        assert sent.endswith("; SELECT pg_backend_pid(), current_setting('statement_timeout')")
        assert 4000 < int(timeout.removesuffix("ms")) <= 5000
        with UnitOfWork(engine) as uow:  # the same connection, no deadline
            assert db.batch(uow.conn, [("SELECT pg_backend_pid()", {})])[0] == [(pid,)]
            uow.conn.exec_driver_sql("INSERT INTO kept VALUES (2)")
            # rolled back on leaving, as nothing committed it
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT n FROM kept").scalars().all() == [1]
            conn.exec_driver_sql("DROP TABLE kept")
            conn.commit()
    finally:
        engine.dispose()
        watcher.dispose()


@pytest.mark.postgres
def test_a_connection_a_deadline_left_in_autocommit_keeps_the_autocommit_a_caller_asks_for(
    postgres_url: str,
) -> None:
    """A deadline's transaction leaves its pooled connection in psycopg's autocommit; a caller that
    then asks that connection for AUTOCOMMIT gets it (VACUUM refuses to run in a transaction)."""
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        with db.deadline(db.Deadline(time.monotonic() + 5)), UnitOfWork(engine) as uow:
            db.batch(uow.conn, [("SELECT 1", {})])
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM pg_class")
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.timeout(30)  # without the lock timeout it would wait for the lock forever
def test_a_lock_wait_under_a_deadline_ends_when_the_deadline_does(postgres_url: str) -> None:
    """(SQLite's lock wait, its busy timeout: tests/deployment/test_backpressure.py.)"""
    engine = db.make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE written (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO written VALUES (1)")
        with engine.connect() as holder:
            holder.exec_driver_sql("SELECT n FROM written FOR UPDATE")  # held until it rolls back
            started = time.monotonic()
            bounded = db.deadline(db.Deadline(started + 0.3))
            with bounded, pytest.raises(sa.exc.OperationalError) as refused, UnitOfWork(engine) as uow:
                uow.conn.exec_driver_sql("UPDATE written SET n = 2")
            assert db.unavailable(refused.value)
            assert time.monotonic() - started < 0.3 + 0.5
            holder.rollback()
        assert _rows(engine) == [1]
    finally:
        engine.dispose()


def test_a_writer_waiting_for_sqlites_lock_under_a_deadline_ends_when_the_deadline_does(
    tmp_path: Path,
) -> None:
    """Another process's writer holds SQLite's write lock: a unit of work's BEGIN IMMEDIATE waits
    only the time left, is answered unavailable (SQLAlchemy's `OperationalError`, as any statement's
    failure), and lets the next writer of this process in."""
    path = tmp_path / "flexearn.db"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE written (n INTEGER)")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # e.g. a settlement in the worker
        started = time.monotonic()
        bounded = db.deadline(db.Deadline(started + 0.3))
        with bounded, pytest.raises(sa.exc.OperationalError) as refused, UnitOfWork(engine):
            pass
        assert db.unavailable(refused.value)
        assert 0.25 < time.monotonic() - started < 0.3 + 0.5
        other.rollback()
        other.close()
        # The refused connection held aside (the pool has no other): the next writer is another
        # connection, which the writer gate lets in only if the refused one left it.
        with engine.connect(), db.deadline(db.Deadline(time.monotonic() + 1)):
            _write(engine, 5)
        assert _rows(engine) == [5]
    finally:
        engine.dispose()
