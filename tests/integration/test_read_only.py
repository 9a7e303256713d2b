"""Read-only units of work: a reader never waits for the writer, never holds it up, and cannot write.

On SQLite every unit of work that writes takes the one write lock when it begins (BEGIN
IMMEDIATE); a read-only one begins deferred, so in WAL mode it reads its snapshot while a writer
holds the lock, and the writer commits while it reads. Each test uses two real connections to a
real database file (or PostgreSQL), nothing mocked.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.bootstrap import Flexearn
from flexearn.services import accounts

BUDGET_S = 0.5  # a request's budget for the database: what a reader may wait, at most


def _names(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.select(t.user.c.name)).scalars())


@pytest.fixture
def sqlite_app(tmp_path: object) -> Flexearn:
    app = Flexearn(f"sqlite:///{tmp_path}/flexearn.db")
    yield app  # type: ignore[misc]
    app.close()


def test_a_reader_reads_while_a_writer_holds_sqlites_write_lock(sqlite_app: Flexearn) -> None:
    app = sqlite_app
    accounts.create_user(app.uow(), "before")
    with app.uow() as writer:  # BEGIN IMMEDIATE: holds the write lock until it commits
        writer.conn.execute(sa.insert(t.user).values(name="during", level="normal", created_at=0))
        started = time.monotonic()
        with db.deadline(db.Deadline(time.monotonic() + BUDGET_S)), app.read_uow() as reader:
            assert _names(reader.conn) == {"before"}  # its snapshot: the writer's row is not committed
        assert time.monotonic() - started < BUDGET_S / 2  # it did not wait for the lock
        writer.commit()
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"before", "during"}


def test_a_writer_commits_while_a_reader_is_reading_on_sqlite(sqlite_app: Flexearn) -> None:
    app = sqlite_app
    accounts.create_user(app.uow(), "before")
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"before"}  # the reader's snapshot is taken
        done: list[float] = []

        def write() -> None:  # another thread, another connection, while the reader stays open
            started = time.monotonic()
            with db.deadline(db.Deadline(started + BUDGET_S)):
                accounts.create_user(app.uow(), "during")
                accounts.create_user(app.uow(), "after")
            done.append(time.monotonic() - started)

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(10)
        assert done, "the writers did not finish"
        assert done[0] < BUDGET_S, "the writers waited for the reader"
        assert _names(reader.conn) == {"before"}  # still its own snapshot
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"before", "during", "after"}


def test_a_read_only_unit_of_work_reads_one_snapshot(app: Flexearn) -> None:
    accounts.create_user(app.uow(), "before")
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"before"}
        accounts.create_user(app.uow(), "during")  # committed by another connection meanwhile
        assert _names(reader.conn) == {"before"}
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"before", "during"}


def test_a_read_only_unit_of_work_refuses_to_write_loudly(app: Flexearn) -> None:
    with pytest.raises(db.ReadOnlyViolation), app.read_uow() as reader:
        reader.conn.execute(sa.insert(t.user).values(name="sneaky", level="normal", created_at=0))
    assert not db.unavailable(db.ReadOnlyViolation("x"))  # a bug, never answered "unavailable"
    with pytest.raises(db.ReadOnlyViolation), app.read_uow() as reader:
        reader.commit()
    # The pooled connection it used writes again in an ordinary unit of work.
    for n in range(3):
        accounts.create_user(app.uow(), f"user{n}")
    with app.read_uow() as reader:
        assert _names(reader.conn) == {"user0", "user1", "user2"}
