"""A database transaction that rolls back unless the use case commits it.

A read-only unit of work (`read_only=True`) is for use cases that only read: it never takes
SQLite's write lock (a deferred transaction in WAL mode: readers and the writer do not wait for
each other), reads one snapshot on both databases, and refuses every write loudly
(`db.ReadOnlyViolation`), so a use case labelled as a read cannot quietly write.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import clock, db


@dataclass
class Joining:
    """A statement that joins the first transaction of a context that can take it (see
    `joining_first`), and what its rows must be (`check` raises otherwise)."""

    sql: str  # `:name` parameters, for both databases
    params: dict[str, Any]
    check: Callable[[list[Any]], None]
    taken: bool = False  # a unit of work (or a read) has the statement
    committed: bool = False  # and it was committed
    # Its unit of work's COMMIT failed with the database's unavailability (the connection lost as
    # the COMMIT went out, or before its answer came back): whether it took is not known here, but
    # the statement's own row, committed or not with the rest, will tell (`api/facade.py`).
    lost: bool = False


_joining: ContextVar[Joining | None] = ContextVar("flexearn_joining_first", default=None)

# How many units of work of this process have committed an outcome: whatever this process wrote, a
# figure kept in memory with an older count is out of date (`api/answers.py`). `next()` on a count
# is atomic, so no commit is lost between threads.
_commits = itertools.count(1)
_committed = [0]


def commits() -> int:
    """The number of outcomes this process has committed so far (moves on every one)."""
    return _committed[0]


@contextmanager
def joining_first(
    sql: str, params: dict[str, Any], check: Callable[[list[Any]], None]
) -> Iterator[Joining]:
    """Run the statement `sql` with the first unit of work of this context (this thread's request)
    that can take it, and `check` its rows: in the first writing unit that commits, as its first
    statement (on PostgreSQL in the round trip of its BEGIN and first reads; if `check` raises,
    that transaction rolls back; a unit that rolls back leaves it to the next); or with the first
    read of one statement (`UnitOfWork.read_alone`), in a transaction of its own right after it, on
    the same connection (on PostgreSQL in the same round trip). The request's own bookkeeping (its
    signature's claim in the replay window) then costs no transaction, connection or round trip of
    its own. Afterwards `committed` says whether it happened; if not (the request read nothing that
    way, failed or was refused its COMMIT), the caller does the step on its own."""
    joining = Joining(sql, params, check)
    token = _joining.set(joining)
    try:
        yield joining
    finally:
        _joining.reset(token)


class UnitOfWork:
    def __init__(self, engine: sa.Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only
        self._conn: sa.Connection | None = None
        self._joined: Joining | None = None  # the context's joining statement, this unit's

    def __enter__(self) -> UnitOfWork:
        if db.inlined():  # on the event loop: a pooled connection and a transaction could wait
            if self.read_only:
                raise db.refusal()
            self._conn = db.unit(self.engine)  # the loop's own writer, if it may, and without waiting
        else:
            conn = self.engine.connect()
            try:
                if self.read_only:
                    db.read_only(conn)
                conn.begin()  # may fail: e.g. SQLite's lock wait or a PostgreSQL timeout runs out
            except BaseException:
                conn.close()  # back to the pool now, not when garbage-collected
                raise
            self._conn = conn
        joining = None if self.read_only else _joining.get()
        if joining is not None and not joining.taken:
            joining.taken, joining.lost, self._joined = True, False, joining
            try:  # on SQLite, run now (a replay raises here); on PostgreSQL, with the first statement
                db.later(self._conn, joining.sql, joining.params, joining.check)
            except BaseException as error:
                self.__exit__(type(error), error, error.__traceback__)
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._conn is not None
        joined, self._joined = self._joined, None
        if joined is not None and not joined.committed:
            joined.taken = False  # rolled back with this unit: the next unit of work takes it
        try:
            if self._conn.in_transaction():
                self._conn.rollback()
        except sa.exc.DBAPIError:
            if exc is None:
                raise
            # The connection died with the error already on its way out: that error is the news.
        finally:
            db.release(self.engine, self._conn)
            self._conn = None

    @property
    def conn(self) -> sa.Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    def commit(self, *, outcome: bool = True) -> None:
        """Commit. An API request past its budget rolls back rather than commit unseen, and its
        answer then waits for a COMMIT sent (`db.Deadline`) — unless not `outcome`: bookkeeping
        the request's answer does not report (the replay window), committed regardless."""
        if self.read_only:
            raise db.ReadOnlyViolation("a read-only unit of work has nothing to commit")
        if outcome:
            db.may_commit()
        try:
            db.commit(self.conn)  # with the held writes: if one fails, the transaction rolls back
        except Exception as error:
            if self._joined is not None and db.unavailable(error):
                self._joined.lost = True
            raise
        if outcome:
            _committed[0] = next(_commits)
        if self._joined is not None:
            self._joined.committed = True

    def read_alone(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """The rows of one read (`sql` in the `:name` style, for both databases), in a read-only
        transaction of its own straight through the driver (`db.alone`), without opening this unit
        of work: for the hot reads of one statement, where SQLAlchemy's connection, transaction,
        statement and result machinery cost more than the query itself."""
        if self._conn is not None:
            raise RuntimeError("read_alone reads outside the unit of work; this one is open")
        joining = _joining.get()
        if joining is None or joining.taken:
            return db.alone(self.engine, sql, params, read_only=True)
        joining.taken = True  # read first: if the read fails, nothing of the step is committed
        rows, joined = db.in_turn(self.engine, [(sql, params, True), (joining.sql, joining.params, False)])
        joining.committed = True
        joining.check(joined)
        return rows

    def now(self) -> int:
        """Business time, read inside this transaction."""
        return clock.business_now(self.conn)
