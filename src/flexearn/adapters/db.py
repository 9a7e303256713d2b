"""Engines and migrations for SQLite (embedded, default) and PostgreSQL.

Read-only units of work (`read_only`) never take SQLite's write lock: they begin a deferred
transaction (WAL: a reader neither waits for nor blocks the one writer) with `PRAGMA query_only`
on, and on PostgreSQL a `READ ONLY` transaction in one snapshot (REPEATABLE READ). A write
attempted in one is a bug, raised as `ReadOnlyViolation` (never mistaken for the database's
unavailability).

Also the database's side of backpressure: a request may carry a *deadline* (see `deadline`), and
every transaction begun under one gets only the time left — PostgreSQL's `statement_timeout` and
`lock_timeout`, SQLite's busy timeout — so an API request never waits on a slow or locked database
longer than its budget. Work without a deadline (settlement, the CLI, the admin API) is unbounded.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event

from flexearn.domain.money import plain

MIGRATIONS = Path(__file__).with_name("migrations")

# Bounds that hold for every engine, API or worker: seconds to open a PostgreSQL connection (a
# `connect_timeout` in the URL wins) and to wait for a pooled connection. A pool as large as a busy
# API process needs (its request slots, FLEXEARN_API_DB_SLOTS, default 10, plus health checks and
# admin calls), so that a connection is rarely opened per request.
CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 3.0
POOL_SIZE, POOL_OVERFLOW = 10, 20
# A pooled PostgreSQL connection idle longer than this is pinged before it is used (see `_ping_idle`).
PING_IDLE_S = 1.0
# SQLite's wait for the write lock when no deadline applies (a long settlement may hold it).
SQLITE_BUSY_MS = 60_000
# Every SQLite connection's settings: the pool's (`_sqlite_transactions`) and the loop's (`inline`).
SQLITE_PRAGMAS = ("foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL")
SQLITE_READONLY = 8  # the primary result code of "attempt to write a readonly database"


# The execution option that marks a connection's transactions read-only (see `read_only`).
READ_ONLY = "flexearn_read_only"


class ReadOnlyViolation(RuntimeError):
    """A read-only unit of work tried to write: a use case labelled as a read that is not one."""


def read_only(connection: sa.Connection) -> sa.Connection:
    """Make the transactions `connection` begins read-only (call before it begins one).

    On PostgreSQL the driver then begins them `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`:
    one statement, no `SET TRANSACTION` round trip after it (the pool restores the connection's
    defaults when it is returned)."""
    if connection.dialect.name == "postgresql":
        return connection.execution_options(
            **{READ_ONLY: True}, isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    return connection.execution_options(**{READ_ONLY: True})


def _is_read_only(connection: sa.Connection | None) -> bool:
    return connection is not None and bool(connection.get_execution_options().get(READ_ONLY))


class DatabaseBusy(Exception):
    """The request's time for the database ran out before the database answered (load shedding)."""


class NotInline(Exception):
    """Work asked of the database on the event loop (`inline`) that could wait there: a unit of
    work where none may begin there, any statement on PostgreSQL. Nothing of it was done; the
    caller does it in a database slot, and may do so from now on."""


class WouldWait(NotInline):
    """Work asked of the database on the event loop that would wait this time: another writer holds
    SQLite's write lock, or a period of the market is being settled. Nothing of it was done; the
    caller does it in a database slot, where it can wait — this time only."""


class WriterBusy(WouldWait):
    """`WouldWait` because a writer of this process holds SQLite's write lock (a slot's unit of
    work): the event loop can await its leaving (`writable`) and try again itself, instead of
    handing the work to a slot — where it would hold the lock in turn, across the threads' turns at
    the GIL, and send whatever came meanwhile to slots too (measured: once one purchase went to a
    slot, every later one did, at 1.5× the CPU of one on the loop)."""

    here = True


class WriterElsewhere(WriterBusy):
    """`WriterBusy` of another process's writer (another API worker, the settling worker): SQLite
    tells no one when it lets go, so the loop tries again after a pause (`writable`), as SQLite's
    own busy handler would in a slot — whose thread would hold this process's writers' gate while
    it slept."""

    here = False


# One statement for `in_turn`: its SQL (`:name` parameters, written for both databases), its
# parameters, and whether it only reads.
Statement = tuple[str, dict[str, Any], bool]


# Runs `in_turn`'s statements somewhere else than the pool (`inline(statements=…)`).
StatementRunner = Callable[[sa.Engine, Sequence[Statement]], list[list[Any]]]


@dataclass
class _InlineRun:
    """What `inline` allows (a unit of work that writes, `units`; where `in_turn`'s statements run,
    `statements`) and what it did (`committed`)."""

    units: bool
    statements: StatementRunner | None = None
    committed: bool = False


_inline: ContextVar[_InlineRun | None] = ContextVar("flexearn_db_inline", default=None)


def inline_capable(engine: sa.Engine) -> bool:
    """Whether `inline` work can run on `engine`: a SQLite file (in WAL mode a read waits for no
    lock; an in-memory database has no second connection to read it)."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not url.query


@contextmanager
def inline(*, units: bool = False, statements: StatementRunner | None = None) -> Iterator[None]:
    """Run the statements of `alone`/`in_turn` inside on the calling thread's own connections (the
    event loop's), never waiting: reads as they are (SQLite, WAL: one snapshot, no lock), a write
    only if SQLite's write lock is free at once; with `units`, also one unit of work that writes
    (`unit`), on the same terms. Anything else — a read-only unit of work, a pooled connection, a
    write that would wait — raises `NotInline` (`WouldWait`) before it has done anything. For the
    short work of the request path, where handing it to a thread and back cost more than the work
    (bench/asgi_path.py: a signed balance read 280 → 180 µs of CPU).

    With `statements`, `in_turn`'s statements go to it instead (PostgreSQL's on the event loop,
    awaited: `adapters/loop_postgres.py`); units of work are refused as above."""
    token = _inline.set(_InlineRun(units, statements))
    try:
        yield
    finally:
        _inline.reset(token)


def inlined() -> bool:
    return _inline.get() is not None


def refusal(kind: type[NotInline] = NotInline) -> Exception:
    """What to raise for work that cannot run on the event loop: `kind` — or, once something was
    committed there, a `RuntimeError`: the work can no longer move to a slot whole (a handler run
    on the loop may commit once, as its last step of any weight)."""
    run = _inline.get()
    if run is not None and run.committed:
        return RuntimeError("work on the event loop after its COMMIT needed a slot: commit once, last")
    return kind()


_Kept = weakref.WeakKeyDictionary[sa.Engine, sa.Connection]  # `unit`'s connections, by engine


def unit(engine: sa.Engine) -> sa.Connection:
    """Under `inline(units=True)`: a connection to `engine`'s SQLite file on this thread's own
    writer, in a transaction that holds SQLite's write lock, taken without waiting (`WouldWait` if
    another writer of this process or another holds it). A second unit of work after its COMMIT is
    refused loudly (`refusal`). The connection is the thread's own and stays open between units of
    work (`release` leaves it so): taking it from its pool and giving it back, with the pool's
    reset, cost each SQLite trade on the loop ~40 µs of CPU of its ~430 (bench/asgi_path.py)."""
    run = _inline.get()
    if run is None or not run.units or run.committed:
        raise refusal()
    units: _Kept = _LOOP.__dict__.setdefault("units", weakref.WeakKeyDictionary())
    conn = units.get(engine)
    if conn is None:
        conn = units[engine] = _loop_engine(engine).connect()
    try:
        conn.begin()
    except BaseException:  # refused in SQLAlchemy's begin event, which then leaves the connection
        # marked as beginning (it would never begin a transaction on its own again): a fresh one next
        del units[engine]
        conn.close()
        raise
    return conn


def release(engine: sa.Engine, conn: sa.Connection) -> None:
    """A unit of work of `engine` is done with `conn` (its transaction ended): back to its pool,
    unless it is this thread's own connection of `unit`, which stays open for the next."""
    units: _Kept | None = _LOOP.__dict__.get("units")
    if units is not None and units.get(engine) is conn:
        if not conn.in_transaction() and not conn.invalidated:
            return
        del units[engine]  # left in a transaction (its ROLLBACK failed) or invalidated: let go
    conn.close()


class Deadline:
    """A request's time for the database (`at`, in `time.monotonic()` seconds), and the promise
    that goes with answering it "service unavailable": nothing it wrote was committed.

    The request's answer may give up waiting (`give_up`) while its thread still runs; from then on
    the thread may not COMMIT (`may_commit`, asked by the unit of work, raises `DatabaseBusy` and
    its transaction rolls back). A thread that began its COMMIT first wins: then the answer must
    wait for the thread's outcome instead of claiming nothing happened.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self._lock = threading.Lock()
        self._given_up = False
        self._sent = 0  # the outcome COMMITs sent, less those known not to have taken

    @property
    def committed(self) -> bool:
        """Whether a COMMIT was sent (and not known to have failed): the request's outcome is then
        the thread's."""
        return self._sent > 0

    def remaining_ms(self) -> int:
        return max(1, int((self.at - time.monotonic()) * 1000))  # 0 would mean "no limit" to both

    def give_up(self) -> bool:
        """Stop waiting: True unless a COMMIT was already sent (then the caller must wait)."""
        with self._lock:
            if not self._sent:
                self._given_up = True
            return self._given_up

    def may_commit(self) -> None:
        with self._lock:
            if self._given_up or time.monotonic() > self.at:
                self._given_up = True
                raise DatabaseBusy("the request's budget ran out before its COMMIT; rolled back")
            self._sent += 1

    def did_not_commit(self) -> None:
        """A COMMIT sent is known not to have taken (its connection was lost first, and what it
        would have written is not there): unless another did, "unavailable" is true again."""
        with self._lock:
            self._sent -= 1


_deadline: ContextVar[Deadline | None] = ContextVar("flexearn_db_deadline", default=None)


@contextmanager
def deadline(bound: Deadline) -> Iterator[None]:
    """Bound the transactions begun inside (in this thread's context) by `bound`."""
    token = _deadline.set(bound)
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining_ms() -> int | None:
    bound = _deadline.get()
    return None if bound is None else bound.remaining_ms()


def seconds_left() -> float | None:
    """Seconds left of the current request's deadline (None: no deadline applies)."""
    bound = _deadline.get()
    return None if bound is None else bound.at - time.monotonic()


def did_not_commit() -> None:
    """Tell the current request's deadline (if any) that its COMMIT did not take (`Deadline`)."""
    bound = _deadline.get()
    if bound is not None:
        bound.did_not_commit()


def may_commit() -> None:
    """Refuse (`DatabaseBusy`) to COMMIT under a deadline that has passed, or whose request was
    answered "unavailable"; called just before a unit of work commits, while it can still roll back.
    """
    bound = _deadline.get()
    if bound is not None:
        bound.may_commit()


def alone(engine: sa.Engine, sql: str, params: dict[str, Any], *, read_only: bool = False) -> list[Any]:
    """Run one statement in a transaction of its own, straight through the driver (`in_turn`),
    and return its rows."""
    (rows,) = in_turn(engine, [(sql, params, read_only)])
    return rows


def in_turn(engine: sa.Engine, statements: Sequence[Statement]) -> list[list[Any]]:
    """Run each statement in a transaction of its own, in turn, straight through the driver on one
    pooled connection, and return the rows of each: for work on the request path that needs
    neither SQLAlchemy's statement machinery nor a unit of work (the replay window, the hot reads
    of one statement). A statement that raises ends the run: those before it are committed, those
    after it are not run.

    Under a deadline each is bounded as a unit of work is (SQLite's busy timeout; PostgreSQL's
    statement and lock timeouts). On PostgreSQL every statement's BEGIN, timeouts, the statement and
    COMMIT go as one query of the simple protocol, the parameters quoted by psycopg (`ClientCursor`):
    one round trip for the lot, without the pipeline mode, whose wait polls a writable socket (twice
    the CPU, measured). A read-only statement runs as a read-only unit of work's would:
    `REPEATABLE READ READ ONLY` on PostgreSQL, `query_only` on SQLite (where one statement is its own
    snapshot and takes no lock a writer waits for); SQLite's writers queue as a unit of work's do.
    (On the event loop, the reads of the turn's requests share one such transaction:
    `adapters/loop_postgres`.) A driver error is raised as it is (`unavailable` knows those that
    mean the database is away or busy); a connection it broke is not put back in the pool.
    """
    run = _inline.get()
    if run is not None:
        if run.statements is not None:
            return run.statements(engine, statements)
        return [_sqlite_inline(engine, statement) for statement in statements]
    ms = _remaining_ms()
    pooled = engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        if engine.dialect.name == "sqlite":
            return [_sqlite_alone(engine, pooled, ms, statement) for statement in statements]
        return _postgres_in_turn(driver, ms, statements, _quote(pooled.info, driver))
    except Exception as error:
        if getattr(driver, "broken", False) or getattr(driver, "closed", False):  # psycopg's: lost
            pooled.invalidate(error)
        raise
    finally:
        pooled.close()


def _sqlite_alone(engine: sa.Engine, pooled: Any, ms: int | None, statement: Statement) -> list[Any]:
    sql, params, read_only = statement
    driver = _sqlite_prepare(pooled, ms, reading=read_only)
    if read_only:
        return list(driver.execute(sql, params).fetchall())  # autocommit: its own snapshot
    gate = _GATES[engine]
    gate.enter(driver, ms)
    try:
        return list(driver.execute(sql, params).fetchall())  # autocommit: its own transaction
    finally:
        gate.leave(driver)


_LOOP = threading.local()  # each thread's own connections for `inline` work, by engine


def _loop_connection(engine: sa.Engine, *, reading: bool) -> sqlite3.Connection:
    driver = sqlite3.connect(str(engine.url.database), isolation_level=None, check_same_thread=False)
    for pragma in (*SQLITE_PRAGMAS, "busy_timeout = 0", f"query_only = {int(reading)}"):
        driver.execute(f"PRAGMA {pragma}")
    return driver


def _loop_pair(engine: sa.Engine) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """This thread's writer and reader of `engine`'s file (see `_sqlite_inline`)."""
    connections = _LOOP.__dict__.setdefault("connections", weakref.WeakKeyDictionary())
    pair = connections.get(engine)
    if pair is None:
        if not inline_capable(engine):
            raise NotInline
        writer, reader = (_loop_connection(engine, reading=r) for r in (False, True))
        pair = connections[engine] = (writer, reader)
    return pair  # type: ignore[no-any-return]


def _loop_engine(engine: sa.Engine) -> sa.Engine:
    """An engine whose one connection is this thread's writer of `engine`'s file (`unit`): its
    transactions take SQLite's write lock without waiting, in turn with the writers of `engine`'s
    pool (the same `_WriterGate`). SQLAlchemy's, so that a use case's unit of work runs on it as on
    a pooled connection."""
    engines = _LOOP.__dict__.setdefault("engines", weakref.WeakKeyDictionary())
    found = engines.get(engine)
    if found is None:
        writer, _ = _loop_pair(engine)
        found = sa.create_engine(engine.url, creator=lambda: writer, poolclass=sa.pool.StaticPool)
        _sqlite_transactions(found, gate=_GATES[engine], waits=False)
        _refuse_writes_loudly(found)
        engines[engine] = found
    return found  # type: ignore[no-any-return]


def _sqlite_inline(engine: sa.Engine, statement: Statement) -> list[Any]:
    """`in_turn` for one statement under `inline`, on this thread's own connections to `engine`'s
    file (outside the pool: taking one from it could wait), one for reads (`query_only` on) and one
    for writes: set once each, since setting `query_only` expires every statement the connection
    has prepared (a signed read and its claim toggling it twice re-parsed both, every request).
    Neither waits: their busy timeout is 0. The writer's commits checkpoint the WAL as every
    connection's do, every 1,000 pages, with no writer between the commit and the checkpoint, so
    the WAL is reused from its start. Tried and undone: no checkpoint here (the WAL grew until a
    pooled writer's commit copied all of it back, holding the writers' gate: a sustained run's p99
    235 ms), and a checkpoint in a thread of its own (it never caught up with the loop's writes:
    the WAL grew without end)."""
    sql, params, read_only = statement
    driver = _loop_pair(engine)[read_only]  # the reader if read_only
    if read_only:
        return list(driver.execute(sql, params).fetchall())  # autocommit: its own snapshot
    gate = _GATES[engine]
    if not gate.try_enter(driver):  # another writer of this process is in
        raise refusal(WriterBusy)
    try:
        return list(driver.execute(sql, params).fetchall())  # autocommit: its own transaction
    except sqlite3.OperationalError as error:
        if _busy(error):
            raise refusal(WriterElsewhere) from error  # another process's writer is in
        raise
    finally:
        gate.leave(driver)


def _busy(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _postgres_in_turn(
    driver: Any, ms: int | None, statements: Sequence[Statement], quote: Quote
) -> list[list[Any]]:
    """`in_turn` on PostgreSQL: one simple-protocol query (`postgres_script`)."""
    script, positions, _ = postgres_script(ms, statements, quote)
    cursor = psycopg.ClientCursor(driver)
    driver.autocommit = True  # BEGIN and COMMIT are ours, in the query
    try:
        cursor.execute(script)
        found, at = [], 0
        for position in positions:
            for _ in range(position - at):
                cursor.nextset()
            at = position
            found.append(list(cursor.fetchall()))
        return found
    finally:
        if not driver.closed:  # back on the pool's terms: no transaction left, autocommit off
            if driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                driver.rollback()  # e.g. a statement cancelled by its timeout
            driver.autocommit = False


def postgres_script(
    ms: int | None, statements: Sequence[Statement], quote: Quote, *, together: bool = False
) -> tuple[str, list[int], int]:
    """`in_turn`'s statements as one query of the simple protocol (sent by a `ClientCursor` on a
    connection in autocommit, their values written in by `quote`): each statement's BEGIN, its
    timeouts (under a deadline of `ms`), itself and COMMIT — or, `together`, one BEGIN, timeouts
    and COMMIT around them all. Also the number of each statement's own result among the query's
    results, and how many results the query gives."""
    if together:
        body, positions, count = postgres_part(ms, statements, quote)
        begin = postgres_begin(all(read_only for _, _, read_only in statements))
        return f"{begin}; {body}; COMMIT", [1 + p for p in positions], count + 2
    parts, positions, count = [], [], 0
    for statement in statements:
        body, (position,), size = postgres_part(ms, [statement], quote)
        parts.append(f"{postgres_begin(statement[2])}; {body}; COMMIT")
        positions.append(count + 1 + position)
        count += size + 2
    return "; ".join(parts), positions, count


def postgres_part(
    ms: int | None, statements: Sequence[Statement], quote: Quote
) -> tuple[str, list[int], int]:
    """`statements` for a transaction the caller opens and ends: the timeouts (under a deadline of
    `ms`), then each statement, its values written in by `quote`; with each statement's result's
    number and the results' count, as `postgres_script`'s."""
    sqls = [] if ms is None else [postgres_text(*_timeouts(ms), quote)]
    sqls += [postgres_text(sql, params, quote) for sql, params, _ in statements]
    head = ms is not None
    return "; ".join(sqls), [head + i for i in range(len(statements))], head + len(statements)


# A value as it is written into a query's text (`postgres_text`).
Quote = Callable[[Any], str]


def _quote(info: dict[Any, Any], driver: Any) -> Quote:
    """The `Quote` of a pooled connection (its `info`), made once."""
    quote: Quote | None = info.get(_QUOTE)
    if quote is None:
        quote = info[_QUOTE] = postgres_quote(driver)
    return quote


def postgres_quote(driver: psycopg.BaseConnection[Any]) -> Quote:
    """`driver`'s `Quote`: a value as psycopg's `ClientCursor` writes it into a query (the same
    call, `Transformer.as_literal`, by the connection's adapters), as text."""
    literal = psycopg.adapt.Transformer.from_context(driver).as_literal
    encoding = driver.info.encoding
    return lambda value: literal(value).decode(encoding)


@functools.cache
def _pieces(sql: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`sql`'s text around its `:name` parameters (one piece more than names), and their names."""
    split = re.split(_PARAMETER, sql)
    return tuple(split[0::2]), tuple(split[1::2])


def postgres_text(sql: str, params: dict[str, Any], quote: Quote) -> str:
    """`sql` (`:name` parameters) with the values of `params` written in by `quote`: the text a
    `ClientCursor` sends for it, without psycopg's parse of each query it is asked to send (a
    turn's or a trade's statements joined make a new text each time, parsed and quoted in full) and
    without renaming the parameters of statements sent together apart: a loop turn's query costs
    a third less to build (bench/README.md, "Twentieth pass")."""
    texts, names = _pieces(sql)
    if not names:
        return sql
    out = [texts[0]]
    for name, text in zip(names, texts[1:], strict=True):
        out += (quote(params[name]), text)
    return "".join(out)


def postgres_begin(read_only: bool) -> str:
    """A transaction's BEGIN, as a unit of work's: `REPEATABLE READ READ ONLY` for a read."""
    return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if read_only else "BEGIN"


_CURSOR = "flexearn_cursor"  # `direct`'s cursor, in the pooled connection's `info`
_SCRIPT_CURSOR = "flexearn_script_cursor"  # `batch`'s
_QUOTE = "flexearn_quote"  # the connection's `Quote` (`postgres_quote`)
_PENDING = "flexearn_pending"  # the statements `later` holds until the transaction's next one
_OURS = "flexearn_ours"  # autocommit set by `_postgres_deadlines`: its transactions' BEGIN is ours


def direct(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows of one statement (`sql` in the `:name` style, for both databases) run in `conn`'s
    open transaction straight through the driver: for the statements of the hot writes (a purchase),
    where SQLAlchemy's construction, compilation-cache lookup and result processing cost several
    times what the driver does. Amounts go in as `Amount` binds them (SQLite: canonical text) and
    come back as the driver returns them (read them with `tables.exact`); PostgreSQL's driver
    prepares a statement it has run a few times on the connection (through one cursor, kept with
    it). A statement without rows: []. A driver error is raised as SQLAlchemy raises it
    (`sa.exc.IntegrityError`, `OperationalError`…), so callers catch the same errors whichever way a
    statement went."""
    pooled = conn.connection
    if pooled.info.get(_PENDING):  # PostgreSQL: what `later` held goes first, in the same round trip
        return batch(conn, [(sql, params)])[0]
    driver: Any = pooled.dbapi_connection
    dialect = conn.dialect
    try:
        if dialect.name == "sqlite":
            bound = {name: plain(v) if type(v) is Decimal else v for name, v in params.items()}
            return list(driver.execute(sql, bound).fetchall())
        cursor = pooled.info.get(_CURSOR)
        if cursor is None:  # the pool clears `info` when it replaces the connection
            cursor = pooled.info[_CURSOR] = driver.cursor()
        cursor.execute(_pyformat(sql), params)
        result = cursor.pgresult  # rows or none: asked of the result (`description` builds columns)
        return cursor.fetchall() if result.status == psycopg.pq.ExecStatus.TUPLES_OK else []
    except dialect.loaded_dbapi.Error as error:
        raise _as_sqlalchemys(dialect, driver, sql, params, error) from error


def batch(conn: sa.Connection, statements: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    """The rows of each statement (as `direct` returns them), run in turn in `conn`'s open
    transaction: on PostgreSQL, with whatever `later` held before them, in one round trip — one
    query of the simple protocol, the parameters quoted by psycopg (`ClientCursor`), each statement
    its own snapshot under READ COMMITTED as if sent alone; on SQLite (no round trips) each through
    `direct`. A statement that fails ends the run (those after it are not run) and is raised as
    `direct` raises it; the transaction is then only fit to roll back. For a trade's reads that do
    not depend on each other's rows (a purchase's currency, market lock, open hour, position and
    clock): the round trips, not the statements, were most of its cost (psycopg's send, wait and
    receive, and the server's per-message work)."""
    if conn.dialect.name == "sqlite":
        return [direct(conn, sql, params) for sql, params in statements]
    pooled = conn.connection
    held: list[Held] = pooled.info.get(_PENDING) or []
    run = [*((sql, params) for sql, params, _ in held), *statements]
    if not run:
        return []
    driver: Any = pooled.dbapi_connection
    script = run[0][0]  # for an error: the statement being quoted, then the query sent
    try:
        cursor = pooled.info.get(_SCRIPT_CURSOR)
        if cursor is None:
            cursor = pooled.info[_SCRIPT_CURSOR] = psycopg.ClientCursor(driver)
        # All quoted before anything is sent: if a value is refused (a NUL in a text), what is held
        # stays held; once sent, it is gone.
        quote, texts = _quote(pooled.info, driver), []
        for script, params in run:
            texts.append(postgres_text(script, params, quote))
        script = "; ".join(texts)
        pooled.info.pop(_PENDING, None)
        cursor.execute(script)
        found: list[list[Any]] = []
        for _ in run:
            rows = cursor.pgresult is not None and cursor.pgresult.status == psycopg.pq.ExecStatus.TUPLES_OK
            found.append(cursor.fetchall() if rows else [])
            cursor.nextset()
    except conn.dialect.loaded_dbapi.Error as error:
        raise _as_sqlalchemys(conn.dialect, driver, script, {}, error) from error
    for (_, _, check), rows in zip(held, found, strict=False):
        if check is not None:
            check(rows)
    return found[len(held) :]


# A statement `later` holds: its text, parameters and what checks its rows (None: nobody reads them).
Held = tuple[str, dict[str, Any], Callable[[list[Any]], None] | None]


def later(
    conn: sa.Connection, sql: str, params: dict[str, Any], check: Callable[[list[Any]], None] | None = None
) -> None:
    """Run `sql` in `conn`'s open transaction: on PostgreSQL it is held and sent with the
    transaction's next statement (`direct`, `batch`, one of SQLAlchemy's) or with its COMMIT
    (`commit`), in the same round trip — as SQLAlchemy's ORM flushes before a query — and dropped
    with a rollback; on SQLite it runs now. Its rows go to `check` once they are back (what `check`
    raises, the statement it was sent with raises, its own rows read or not); without a `check`
    nobody reads them. For a trade's writes whose rows nobody reads (a balance, the journal's legs,
    the position), and the request's signature claimed with its first statement: their errors
    surface with the statement they are sent with, which is only ever a statement of the same
    transaction."""
    if conn.dialect.name == "sqlite":
        rows = direct(conn, sql, params)
        if check is not None:
            check(rows)
    else:
        conn.connection.info.setdefault(_PENDING, []).append((sql, params, check))


def commit(conn: sa.Connection) -> None:
    """COMMIT `conn`'s transaction: on PostgreSQL in the round trip of what `later` still holds (if
    anything), else on its own. If a held statement fails, nothing after it ran — the COMMIT
    neither — and the transaction is left to roll back. A held statement whose rows are checked
    (a claim: whether to commit at all) is sent, and checked, before the COMMIT."""
    held: list[Held] = conn.connection.info.get(_PENDING) or []
    if held and all(check is None for _, _, check in held):
        batch(conn, [("COMMIT", {})])  # ended: SQLAlchemy's COMMIT below finds nothing to send
    else:
        send_held(conn)
    conn.commit()


def cursor(conn: sa.Connection) -> Any:
    """A cursor of the driver's own on `conn`'s connection, for settlement's bulk reads and writes
    past SQLAlchemy; what `later` holds is sent first, so the cursor's statements come after it."""
    send_held(conn)
    driver: Any = conn.connection.dbapi_connection
    return driver.cursor()


def send_held(conn: sa.Connection) -> None:
    """Send what `later` holds for `conn`'s transaction now (and check what it checks): before its
    COMMIT, where a failure leaves the transaction open to roll back (`commit`)."""
    if conn.connection.info.get(_PENDING):
        batch(conn, [])


def _send_held(engine: sa.Engine) -> None:
    """What `later` held is sent before any other statement of its transaction and before its
    COMMIT (if the COMMIT's caller has not sent it: `send_held`), and forgotten on a rollback or
    when the connection goes back to the pool."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before_statement(conn: sa.Connection, *_: Any) -> None:
        send_held(conn)

    @event.listens_for(engine, "commit")
    def _before_commit(conn: sa.Connection) -> None:
        try:
            send_held(conn)
        except BaseException:
            # SQLAlchemy counts the transaction as ended once its commit began, and would put the
            # connection back in the pool without a rollback: the failed transaction ends here.
            driver: Any = conn.connection.dbapi_connection
            if driver.closed:  # lost with the server: not back into the pool
                conn.invalidate()
            else:
                driver.rollback()
            raise

    @event.listens_for(engine, "rollback")
    def _rollback(conn: sa.Connection) -> None:
        if not conn.invalidated:
            conn.connection.info.pop(_PENDING, None)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info.pop(_PENDING, None)


def _as_sqlalchemys(
    dialect: sa.Dialect, driver: Any, sql: str, params: dict[str, Any], error: Any
) -> sa.exc.StatementError:
    """A driver's error as SQLAlchemy would have raised it, for a statement sent past SQLAlchemy."""
    lost = dialect.is_disconnect(error, driver, None)
    raised: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql, params, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
    return raised


_PARAMETER = r"(?<!:):(\w+)"  # a `:name` parameter (not a `::type` cast)


@functools.cache
def _pyformat(sql: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`."""
    return re.sub(_PARAMETER, r"%(\1)s", sql)


def unavailable(error: BaseException) -> bool:
    """Whether `error` means the database is unreachable, restarting or overloaded (answer 503).

    That is: no connection (refused, closed, shutting down — `OperationalError`, or any error that
    invalidated the connection), no pooled connection in time (`TimeoutError`), a statement or lock
    wait cancelled by its timeout (`QueryCanceled`, `LockNotAvailable`: operational errors too),
    SQLite's "database is locked", or no request slot in time (`DatabaseBusy`). Anything else —
    a constraint refused, a bug — is not the database's unavailability.
    """
    if isinstance(error, DatabaseBusy | sa.exc.TimeoutError | sa.exc.OperationalError):
        return True
    if isinstance(error, sqlite3.OperationalError | psycopg.OperationalError):  # from `alone`
        return True
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, **kwargs)
        _sqlite_transactions(engine)
        _refuse_writes_loudly(engine)
        return engine
    if "poolclass" not in kwargs:  # e.g. NullPool takes none of these
        kwargs.setdefault("pool_timeout", POOL_TIMEOUT_S)
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    if "connect_timeout" not in sa.make_url(url).query:
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    engine = sa.create_engine(url, **kwargs)
    if "poolclass" not in kwargs and not kwargs.get("pool_pre_ping"):
        _ping_idle(engine)
    _postgres_deadlines(engine)
    _send_held(engine)
    _refuse_writes_loudly(engine)
    return engine


def _refuse_writes_loudly(engine: sa.Engine) -> None:
    """A write refused because its transaction is read-only raises `ReadOnlyViolation`: on SQLite
    the refusal is an OperationalError, which would otherwise read as "database unavailable"."""

    @event.listens_for(engine, "handle_error")
    def _handle_error(context: sa.engine.ExceptionContext) -> None:
        refused = context.original_exception
        readonly = getattr(refused, "sqlstate", None) == "25006" or (  # read_only_sql_transaction
            getattr(refused, "sqlite_errorcode", 0) & 0xFF == SQLITE_READONLY
        )
        if readonly and _is_read_only(context.connection):
            raise ReadOnlyViolation(
                f"a read-only unit of work tried to write: {context.statement}"
            ) from context.sqlalchemy_exception


# A transaction's statement and lock timeouts, in milliseconds (`ms`), for its rest only (SET LOCAL).
_TIMEOUTS = "SELECT set_config('statement_timeout', :ms, true), set_config('lock_timeout', :ms, true)"


def _timeouts(ms: int) -> tuple[str, dict[str, Any]]:
    """The statement setting a transaction's timeouts to `ms`, and its parameters (one text for
    every value: its pieces are cut once, `_pieces`)."""
    return _TIMEOUTS, {"ms": str(ms)}


def _ping_idle(engine: sa.Engine) -> None:
    """A connection that died with the server is replaced before use — when it may have: a pooled
    connection idle for more than `PING_IDLE_S` is pinged at checkout (SQLAlchemy's pre-ping, but
    not on every checkout: under traffic that was a round trip per transaction). One that fails its
    ping is discarded and another checked out (`DisconnectionError`). A connection that dies while in
    use, or within a second of its last use, fails its statement instead: an `OperationalError`
    (answered "service unavailable"), after which SQLAlchemy discards every connection of the pool
    that was opened before it."""

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sa.exc.DisconnectionError(f"a pooled connection failed its ping: {error}") from error


def _postgres_deadlines(engine: sa.Engine) -> None:
    """A transaction begun under a deadline may run each statement, or wait for a lock, only as long
    as the deadline leaves (`SET LOCAL`: the bound ends with the transaction, the pooled connection
    keeps no trace of it).

    Its BEGIN and the timeouts are held (`later`) and go in the same query of the simple protocol as
    the transaction's first statement: with its first `batch` or `direct` statement (a trade's reads),
    one round trip for all three, or in one round trip of their own before a statement of
    SQLAlchemy's. The BEGIN is the one psycopg would send for the connection's settings
    (`_begin_command`); psycopg, which would send its implicit BEGIN in a round trip of its own, is
    told the transaction is ours (autocommit, which only decides whether psycopg begins one: its
    COMMIT and ROLLBACK end ours as usual). A transaction begun without a deadline is psycopg's, as
    before."""
    dialect = engine.dialect

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        ms = _remaining_ms()
        pooled = connection.connection
        driver: Any = pooled.dbapi_connection
        try:  # the connection is idle: setting autocommit sends nothing
            if ms is None:  # psycopg's BEGIN, as the connection was before a deadline's made it ours
                if (
                    pooled.info.pop(_OURS, False)
                    and driver.autocommit
                    and connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
                ):
                    driver.autocommit = False
                return
            if not driver.autocommit:
                driver.autocommit = pooled.info[_OURS] = True
        except psycopg.Error as error:  # e.g. found lost with the server
            connection.invalidate(error)
            raise _as_sqlalchemys(dialect, driver, "BEGIN", {}, error) from error
        begin: list[Held] = [(_begin_command(driver), {}, None), (*_timeouts(ms), None)]
        pooled.info[_PENDING] = begin


def _begin_command(driver: psycopg.Connection[Any]) -> str:
    """The BEGIN psycopg sends for `driver`'s transaction settings (its isolation level, read-only,
    deferrable), e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`."""
    parts = ["BEGIN"]
    if driver.isolation_level is not None:
        parts.append(f"ISOLATION LEVEL {driver.isolation_level.name.replace('_', ' ')}")
    if driver.read_only is not None:
        parts.append("READ ONLY" if driver.read_only else "READ WRITE")
    if driver.deferrable is not None:
        parts.append("DEFERRABLE" if driver.deferrable else "NOT DEFERRABLE")
    return " ".join(parts)


def _sqlite_transactions(engine: sa.Engine, gate: _WriterGate | None = None, *, waits: bool = True) -> None:
    """Take SQLite's write lock when a transaction begins, not at its first write — unless the
    transaction only reads.

    A deferred transaction that reads and then writes can fail with "database is locked" when
    another connection wrote in between; BEGIN IMMEDIATE serialises writers up front instead. A
    read-only one begins deferred: in WAL mode it reads one snapshot without any lock a writer
    waits for, and `PRAGMA query_only` makes a write in it fail rather than take the lock.

    The writers go in through `gate` (a new one for the engine, or another engine's: `_loop_engine`
    shares its pool's). Unless `waits`, a writer takes the lock only if it is free at once, else
    raises `WouldWait` (the event loop's `unit`).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        record.info["query_only"] = False  # SQLite's default, for each new connection
        record.info["busy_ms"] = SQLITE_BUSY_MS  # the driver's `timeout`, set at connect
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if gate is None:
        gate = _GATES[engine] = _WriterGate()
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(pooled: Any) -> None:
        try:
            commit(pooled)
        finally:
            gate.leave(pooled.driver_connection)
        if not waits:  # the event loop's writer (`unit`): nothing may move to a slot after this
            run = _inline.get()
            if run is not None:
                run.committed = True

    def do_rollback(pooled: Any) -> None:
        try:
            rollback(pooled)
        finally:
            gate.leave(pooled.driver_connection)

    # The transaction's end, after its COMMIT or ROLLBACK reached SQLite (SQLAlchemy's own
    # "commit" and "rollback" events come before it): the next writer of this process goes in.
    setattr(dialect, "do_commit", do_commit)  # noqa: B010  (an instance's method, replaced)
    setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        if not waits:
            _begin_at_once(gate, connection.connection.driver_connection)
            return
        # Under a deadline, wait for the write lock only as long as it leaves; else as long as the
        # longest writer may need (a settlement). The pragma is the connection's: set every time.
        # Both BEGINs go straight to the driver; a writer's BEGIN IMMEDIATE can fail ("database
        # is locked"), raised as SQLAlchemy would have raised it (`sa.exc.OperationalError`).
        ms = _remaining_ms()
        reading = _is_read_only(connection)
        driver = _sqlite_prepare(connection.connection, ms, reading=reading)
        if reading:
            driver.execute("BEGIN")
            return
        gate.enter(driver, ms)
        try:
            driver.execute("BEGIN IMMEDIATE")
        except BaseException as error:
            gate.leave(driver)
            if isinstance(error, sqlite3.Error):
                raise _as_sqlalchemys(dialect, driver, "BEGIN IMMEDIATE", {}, error) from error
            raise


def _begin_at_once(gate: _WriterGate, driver: Any) -> None:
    """BEGIN IMMEDIATE if SQLite's write lock is free now (the driver's busy timeout is 0)."""
    if not gate.try_enter(driver):  # another writer of this process is in
        raise WriterBusy
    try:
        driver.execute("BEGIN IMMEDIATE")
    except BaseException as error:
        gate.leave(driver)
        if isinstance(error, sqlite3.Error) and _busy(error):  # another process's writer is in
            raise WriterElsewhere from error
        raise


_GATES: weakref.WeakKeyDictionary[sa.Engine, _WriterGate] = weakref.WeakKeyDictionary()


def _sqlite_prepare(pooled: Any, ms: int | None, *, reading: bool) -> Any:
    """Set a pooled SQLite connection (it outlives each checkout) up for a transaction: its busy
    timeout (the deadline's, else `SQLITE_BUSY_MS`) and `query_only` (on for a reader, so that a
    write fails rather than take the lock); its driver connection. The pragmas go to the driver
    directly: they cannot fail, and need none of SQLAlchemy's statement machinery."""
    driver = pooled.driver_connection
    busy = SQLITE_BUSY_MS if ms is None else ms
    if pooled.info.get("busy_ms") != busy:  # each text is compiled anew: set only when it changes
        driver.execute(f"PRAGMA busy_timeout = {busy}")
        pooled.info["busy_ms"] = busy
    if pooled.info.get("query_only", False) != reading:
        driver.execute(f"PRAGMA query_only = {int(reading)}")
        pooled.info["query_only"] = reading
    return driver


class _WriterGate:
    """The writers of this process take SQLite's write lock in turn, queued here.

    SQLite lets one transaction write at a time; the others retry BEGIN IMMEDIATE in its busy
    handler, which sleeps between tries (up to 100 ms each), so under contention a writer can lose
    the race many times over and wait a second or more while others pass. Queued on a lock in this
    process, the next writer goes in as soon as the previous one ends; only writers of other
    processes (and this process's one writer) still meet at SQLite's lock. A writer waits here at
    most as long as SQLite would have let it wait (its deadline, else `SQLITE_BUSY_MS`), then gets
    `DatabaseBusy`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None  # id() of the driver connection in the write transaction
        self._mutex = threading.Lock()  # guards `_waiting`
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def enter(self, driver: Any, ms: int | None) -> None:
        if self._holder == id(driver):  # the same connection's next transaction
            return
        if not self._lock.acquire(timeout=(SQLITE_BUSY_MS if ms is None else ms) / 1000):
            raise DatabaseBusy("another writer of this process held SQLite's write lock too long")
        self._holder = id(driver)

    def try_enter(self, driver: Any) -> bool:
        """`enter` if no other writer of this process is in, without waiting."""
        if self._holder == id(driver):
            return True
        if not self._lock.acquire(blocking=False):
            return False
        self._holder = id(driver)
        return True

    def leave(self, driver: Any) -> None:
        if driver is not None and self._holder == id(driver):
            self._holder = None
            self._lock.release()
            with self._mutex:
                waiting, self._waiting = self._waiting, []
            for loop, left in waiting:
                loop.call_soon_threadsafe(_done, left)

    def left(self) -> asyncio.Future[None]:
        """A future of the running loop, done once the writer now in leaves (at once if none is)."""
        loop = asyncio.get_running_loop()
        left = loop.create_future()
        with self._mutex:  # a `leave` after the check takes the mutex next: it wakes this one
            if self._lock.locked():
                self._waiting.append((loop, left))
                return left
        left.set_result(None)
        return left


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():  # its waiter may have stopped waiting
        future.set_result(None)


# After `WriterElsewhere`, the loop tries again after these pauses (the last one from then on):
# SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms between its tries.
ELSEWHERE_RETRY_S = (0.001, 0.002, 0.005, 0.01, 0.02)


def writable(engine: sa.Engine, busy: WriterBusy, tries: int) -> asyncio.Future[None]:
    """On the event loop, after `busy` (the `tries`-th time in a row): a future done when the write
    is worth trying again — once the writer of this process that held `engine`'s SQLite write lock
    has left it, or after a pause for another process's."""
    if busy.here:
        return _GATES[engine].left()
    loop = asyncio.get_running_loop()
    again = loop.create_future()
    loop.call_later(ELSEWHERE_RETRY_S[min(tries, len(ELSEWHERE_RETRY_S) - 1)], _done, again)
    return again


def alembic_config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
