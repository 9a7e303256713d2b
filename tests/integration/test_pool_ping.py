"""PostgreSQL's pooled connections are pinged only after being idle (`db.PING_IDLE_S`): a connection
the server dropped while it sat in the pool is replaced unseen; one dropped while in use fails its
statement ("service unavailable") and takes the rest of the pool with it, so the next works."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.services.unit_of_work import UnitOfWork


@pytest.fixture
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    made = db.make_engine(postgres_url)
    yield made
    made.dispose()


def backend(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def drop(engine: sa.Engine, pid: int) -> None:
    """The server ends that session, as a restart would (from a connection of its own)."""
    other = db.make_engine(engine.url.render_as_string(hide_password=False), poolclass=sa.NullPool)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    other.dispose()


def test_busy_connections_are_not_pinged(engine: sa.Engine) -> None:
    backend(engine)  # one pooled connection, just used
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    pings = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda conn: pings.append(1) or original(conn)  # type: ignore[method-assign]
    for _ in range(5):
        backend(engine)
    assert pings == []  # reused within PING_IDLE_S: no round trip before each transaction
    assert len(sent) == 5


def test_a_connection_dropped_while_idle_is_replaced_unseen(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend(engine)
    drop(engine, first)
    monkeypatch.setattr(db, "PING_IDLE_S", 0.0)  # as if it had sat in the pool for a while
    assert backend(engine) != first  # pinged, found dead, replaced: no error reached the caller


def test_a_connection_dropped_while_busy_fails_once_then_the_pool_is_renewed(engine: sa.Engine) -> None:
    with engine.connect() as a, engine.connect() as b:  # two pooled connections
        pids = {conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() for conn in (a, b)}
    for pid in pids:
        drop(engine, pid)  # the server restarted: every pooled connection is dead
    with pytest.raises(sa.exc.OperationalError) as failed:  # used at once: no ping
        backend(engine)
    assert db.unavailable(failed.value)  # answered "service unavailable"
    assert backend(engine) not in pids  # the whole pool was discarded: the next one is new


def test_a_connection_dropped_while_busy_fails_its_first_statement_under_a_deadline_then_the_next_is_new(
    engine: sa.Engine,
) -> None:
    """Under a request's deadline the BEGIN (with the deadline's timeouts) goes with the first
    statement: on a dead connection that query fails as any statement would, and that connection
    leaves the pool."""
    pid = backend(engine)
    drop(engine, pid)
    with db.deadline(db.Deadline(time.monotonic() + 5)):
        with pytest.raises(sa.exc.OperationalError) as failed, UnitOfWork(engine) as uow:
            db.batch(uow.conn, [("SELECT pg_backend_pid()", {})])
        assert db.unavailable(failed.value)
        with UnitOfWork(engine) as uow:
            assert uow.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
