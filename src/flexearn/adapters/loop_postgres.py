"""PostgreSQL's short reads on the event loop, awaited: no thread, no pool checkout, no GIL handover.

A handler of the request path is plain synchronous code (`services`), and on PostgreSQL its reads of
one statement (`db.in_turn`, with the signature's claim joined in the same round trip) otherwise
run in a database slot's thread. `run` calls it on the event loop instead, in a greenlet
(SQLAlchemy's `greenlet_spawn`, the bridge its own asyncio support is built on): where it would ask
the pool for a connection, its statements are sent on one of the loop's own asynchronous
connections (psycopg's `AsyncConnection`) and the greenlet waits for the answer while the loop serves
other requests. The statements of all the requests that reach that point in one turn of the loop go
together (`_Batch`): one query of the simple protocol, their reads in one read-only transaction and
their claims in another — one round trip and one COMMIT for the turn.
Anything else — a unit of work (SQLAlchemy's connection, which would block the loop) — raises
`db.NotInline` before it has done anything, and the caller runs the handler in a slot.

The caller holds one of the process's database slots meanwhile (`api/admission.py`), so a loop has
at most as many connections at once as the process has slots, and the same bound on what waits on
the database. A connection idle longer than `db.PING_IDLE_S` is pinged before it is used (as the
pool's are); one that fails, or whose query a request stopped waiting for, is closed, never reused;
one whose statement the server refused (its timeout, say) is rolled back and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import psycopg.errors
import sqlalchemy as sa
from sqlalchemy.util import await_only, greenlet_spawn

from flexearn.adapters import db

if TYPE_CHECKING:
    from psycopg.pq.abc import PGresult

T = TypeVar("T")


def capable(engine: sa.Engine) -> bool:
    """Whether `run` can serve `engine`'s reads: a PostgreSQL database."""
    return engine.dialect.name == "postgresql"


async def run(
    engine: sa.Engine, deadline: db.Deadline, until: float, fn: Callable[[], T], release: Callable[[], None]
) -> T:
    """`fn()` on the event loop under `deadline`, its `db.in_turn` statements on `engine` sent on
    the loop's own connections and awaited (see the module); `db.NotInline` if `fn` needs more.
    A statement still unanswered at `until` (`time.monotonic()`) is left to run in a task of its
    own, and the request is refused `db.DatabaseBusy` — a cancelled request is left the same way.
    `release` is called once all is over: when `fn` has returned, or when the last statement left
    running ends (the caller's slot stays taken while the database holds it)."""
    left: list[asyncio.Future[Any]] = []

    def statements(engine: sa.Engine, statements: Sequence[db.Statement]) -> list[list[Any]]:
        return await_only(_connections(engine).in_turn(until, deadline, statements, left))

    def call() -> T:
        with db.deadline(deadline), db.inline(statements=statements):
            return fn()

    try:
        return await greenlet_spawn(call)
    finally:
        if left:
            _background(asyncio.wait(left)).add_done_callback(lambda _: release())
        else:
            release()


class _Connections:
    """One event loop's connections to one database, idle ones kept for the next request, and the
    reads of the loop's current turn, gathered to go as one query (`_Batch`)."""

    def __init__(self, engine: sa.Engine) -> None:
        args, params = engine.dialect.create_connect_args(engine.url)
        params.setdefault("connect_timeout", db.CONNECT_TIMEOUT_S)
        self._args, self._params = args, params
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []  # last used last
        self._gathering: _Batch | None = None

    async def in_turn(
        self,
        until: float,
        deadline: db.Deadline,
        statements: Sequence[db.Statement],
        left: list[asyncio.Future[Any]],
    ) -> list[list[Any]]:
        """`db.in_turn`'s statements — reads, then writes — with those of the other requests of
        the loop's turn in one query (`_Batch`), in a task of its own: awaited until `until`, then
        left running (its answer added to `left`), its connection closed once it ends. psycopg
        itself, cancelled, would ask the server to cancel and wait for it, which a hung server never
        answers."""
        if until <= time.monotonic():
            raise db.DatabaseBusy("the request's budget ran out before its statement was sent")
        batch = self._gathering
        if batch is None:
            batch = self._gathering = _Batch()
            asyncio.get_running_loop().call_soon(self._send, batch)
        answer = batch.add(deadline, statements)
        try:
            async with asyncio.timeout(until - time.monotonic()):
                return await asyncio.shield(answer)
        except BaseException as error:
            if not answer.done():
                left.append(answer)
                answer.add_done_callback(_seen)  # its error, if any, is nobody's to raise now
                batch.abandoned = True  # its connection is closed when it ends, not reused
            if isinstance(error, TimeoutError):
                raise db.DatabaseBusy("the database did not answer within the request's budget") from None
            raise

    def _send(self, batch: _Batch) -> None:
        self._gathering = None
        _background(self._run(batch))

    async def _run(self, batch: _Batch) -> None:
        """Send `batch` until each of its calls has its answer (see `_Batch.run`); on a failure of
        the connection itself, every call not yet answered gets it."""
        calls, connection = batch.calls, None
        if not calls:  # its one call was refused before it joined
            return
        try:
            connection = await self._take()
            while calls:
                calls = await batch.run(connection, calls)
        except BaseException as error:  # the connection's state is unknown
            if connection is not None:
                await _close(connection)
            stopped = error if isinstance(error, Exception) else db.DatabaseBusy("the server is stopping")
            for call in calls:
                call.answered(error=stopped)
            if stopped is not error:
                raise
            return
        if batch.abandoned:
            await _close(connection)
        else:
            self._idle.append((connection, time.monotonic()))

    async def _take(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            connection, since = self._idle.pop()
            if time.monotonic() - since <= db.PING_IDLE_S:
                return connection
            try:
                await connection.execute("")  # an empty query: one round trip
            except psycopg.Error:
                await _close(connection)  # e.g. the server restarted meanwhile
                continue
            return connection
        return await psycopg.AsyncConnection.connect(*self._args, **self._params, autocommit=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await _close(connection)


# A read's statement and lock timeouts are what is left of its request's budget, from a second up
# cut down to a multiple of this (by less than a tenth): the reads of one turn, begun within
# milliseconds of each other, then mostly share one setting, and the transaction sets it once for
# them (each `set_config` cost the server about as much as the read it bounds: 16 µs against 25,
# measured on a one-row read by index).
TIMEOUT_STEP_MS = 100


def _timeout_ms(call: _Call) -> int:
    ms = call.deadline.remaining_ms()
    return ms if ms < 10 * TIMEOUT_STEP_MS else ms - ms % TIMEOUT_STEP_MS


def _order(statement: db.Statement) -> tuple[str, str]:
    """Where a write goes among a turn's (`_Batch`): by its text, then its parameters (by name, so a
    claim by its key), the same in every process."""
    sql, params, _ = statement
    return sql, repr(sorted(params.items()))


class _Call:
    """One `in_turn` of a batch: its reads and its writes (in that order), its deadline, its answer."""

    __slots__ = ("answer", "deadline", "reads", "writes")

    def __init__(self, deadline: db.Deadline, statements: Sequence[db.Statement]) -> None:
        split = next((i for i, (_, _, read_only) in enumerate(statements) if not read_only), len(statements))
        self.reads, self.writes = statements[:split], statements[split:]
        if any(read_only for _, _, read_only in self.writes):
            raise ValueError("on the event loop, a request's statements are its reads, then its writes")
        self.deadline = deadline
        self.answer: asyncio.Future[list[list[Any]]] = asyncio.get_running_loop().create_future()

    def answered(self, rows: list[list[Any]] | None = None, error: BaseException | None = None) -> None:
        if not self.answer.done():
            if error is None:
                self.answer.set_result(rows or [])
            else:
                self.answer.set_exception(error)


class _Batch:
    """The `in_turn` calls of one turn of the loop, sent as one query of the simple protocol: the
    reads of all of them in one read-only transaction (`REPEATABLE READ`, as a read's unit of work:
    one snapshot for the turn's reads, each call's under its own deadline's timeouts, cut down to
    `TIMEOUT_STEP_MS`; the tables' share locks are held until that transaction's COMMIT), then their
    writes — the signatures' claims — in one transaction: one COMMIT and one WAL flush for the
    turn, one round trip for all. Two claims of one signature in a turn: the second finds the
    first's row, as it would after its COMMIT.

    The writes go in an order of their own (`_order`), not the calls': two processes' turns that
    claim the same signatures both take their rows' locks in that order, so one waits for the
    other; in the calls' order, one turn could hold the lock of a signature the other waits for,
    and wait for one the other holds — a deadlock, which PostgreSQL ends after a second by failing
    one of them.

    A statement that fails ends the query there (PostgreSQL runs nothing after it, and the writes
    had not committed): its call gets the error, and the other calls are sent again, without it.
    A failure of a transaction's own BEGIN or COMMIT is every call's whose statements had not run
    or were not committed; the calls whose reads ran get their rows."""

    def __init__(self) -> None:
        self.calls: list[_Call] = []
        self.abandoned = False  # a caller stopped waiting

    def add(
        self, deadline: db.Deadline, statements: Sequence[db.Statement]
    ) -> asyncio.Future[list[list[Any]]]:
        call = _Call(deadline, statements)
        self.calls.append(call)
        return call.answer

    @staticmethod
    def query(quote: db.Quote, calls: list[_Call]) -> tuple[str, list[int | None], list[list[int]]]:
        """The query sending `calls` (their values written in by `quote`), the call each result is
        of (None: of a transaction's BEGIN or COMMIT, or the writes' timeouts) and each call's
        statements' results."""
        parts: list[str] = []
        owners: list[int | None] = []  # by result: the call whose statement (or timeouts) it is
        places: list[list[int]] = [[] for _ in calls]  # by call: its statements' results
        # The longest budgets first: a call's `set_config` then runs under a timeout no shorter than
        # its own (the first under none), so no other call's short budget can cancel it.
        reading = sorted(((_timeout_ms(call), i) for i, call in enumerate(calls) if call.reads), reverse=True)
        if reading:
            parts.append(db.postgres_begin(read_only=True))
            owners.append(None)
            set_ms = None
            for ms, i in reading:  # each call's reads under its own deadline's timeouts, set when changed
                timeouts = None if ms == set_ms else ms
                script, positions, count = db.postgres_part(timeouts, calls[i].reads, quote)
                set_ms = ms
                parts.append(script)
                places[i] += [len(owners) + p for p in positions]
                owners += [i] * count
            parts.append("COMMIT")
            owners.append(None)
        writes = sorted(  # (call, its write's index, the write)
            ((i, j, statement) for i, call in enumerate(calls) for j, statement in enumerate(call.writes)),
            key=lambda write: _order(write[2]),
        )
        if writes:
            ms = min(calls[i].deadline.remaining_ms() for i, _, _ in writes)
            script, positions, count = db.postgres_script(
                ms, [statement for _, _, statement in writes], quote, together=True
            )
            parts.append(script)
            shared: list[int | None] = [None] * count
            at: dict[tuple[int, int], int] = {}
            for (i, j, _), p in zip(writes, positions, strict=True):
                at[i, j] = len(owners) + p
                shared[p] = i
            for i, call in enumerate(calls):  # each call's results in its own statements' order
                places[i] += [at[i, j] for j in range(len(call.writes))]
            owners += shared
        return "; ".join(parts), owners, places

    @staticmethod
    async def run(connection: psycopg.AsyncConnection[Any], calls: list[_Call]) -> list[_Call]:
        """Send `calls` once on `connection`, answer those it can; return the calls to send again."""
        cursor = _Cursor(connection)
        script, owners, places = _Batch.query(db.postgres_quote(connection), calls)
        await cursor.execute(script)
        end = len(owners) if cursor.failed is None else cursor.failed[0]
        rows, at = {}, 0
        for p in sorted(p for place in places for p in place if p < end):
            for _ in range(p - at):
                cursor.nextset()
            at = p
            rows[p] = list(await cursor.fetchall())
        if cursor.failed is None:
            for call, place in zip(calls, places, strict=True):
                call.answered([rows[p] for p in place])
            return []
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await connection.execute("ROLLBACK")  # the failed transaction, left open by its BEGIN
        failed, error = cursor.failed
        owner = owners[failed]
        if owner is not None:
            calls[owner].answered(error=error)
            return [call for i, call in enumerate(calls) if i != owner]
        for call, place in zip(calls, places, strict=True):
            if call.writes or any(p >= failed for p in place):  # not committed, or not run
                call.answered(error=error)
            else:  # its reads ran (and those of a read-only transaction need no COMMIT)
                call.answered([rows[p] for p in place])
        return []


class _Cursor(psycopg.AsyncClientCursor[Any]):
    """A cursor that keeps the results that came before a failed statement (psycopg's raises and
    drops them all) and notes the failure: its result's number and its error."""

    failed: tuple[int, psycopg.Error] | None = None

    def _check_results(self, results: list[PGresult]) -> None:
        for i, result in enumerate(results):
            if i and result.status == psycopg.pq.ExecStatus.FATAL_ERROR:
                self.failed = (i, psycopg.errors.error_from_result(result, encoding=self._encoding))
                del results[i:]
                break
        super()._check_results(results)


def _seen(answer: asyncio.Future[Any]) -> None:
    if not answer.cancelled():
        answer.exception()


_TASKS: set[asyncio.Future[Any]] = set()  # tasks nobody awaits, kept from the collector until done


def _background(work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    task = asyncio.ensure_future(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


async def _close(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection: nothing left to tell
        await connection.close()


# By loop, then engine: a connection belongs to the loop it was opened on.
_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[sa.Engine, _Connections]] = (
    weakref.WeakKeyDictionary()
)


def _connections(engine: sa.Engine) -> _Connections:
    by_engine = _LOOPS.setdefault(asyncio.get_running_loop(), {})
    found = by_engine.get(engine)
    if found is None:
        found = by_engine[engine] = _Connections(engine)
    return found


async def close() -> None:
    """Close the running loop's idle connections (a test's, or a worker's at its ASGI lifespan's
    shutdown: `api/app.create_app`)."""
    for connections in _LOOPS.pop(asyncio.get_running_loop(), {}).values():
        await connections.close()
