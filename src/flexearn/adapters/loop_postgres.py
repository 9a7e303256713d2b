"""PostgreSQL's short reads on the event loop, awaited: no thread, no pool checkout, no GIL handover.

A handler of the request path is plain synchronous code (`services`), and on PostgreSQL its reads of
one statement (`db.in_turn`, with the signature's claim joined in the same round trip) otherwise
run in a database slot's thread. `run` calls it on the event loop instead, in a greenlet
(SQLAlchemy's `greenlet_spawn`, the bridge its own asyncio support is built on): where it would ask
the pool for a connection, its statements are sent on one of the loop's own asynchronous
connections (psycopg's `AsyncConnection`, the same query of the simple protocol `db.in_turn` sends)
and the greenlet waits for the answer while the loop serves other requests. Anything else — a unit
of work (SQLAlchemy's connection, which would block the loop) — raises `db.NotInline` before it has
done anything, and the caller runs the handler in a slot.

The caller holds one of the process's database slots meanwhile (`api/admission.py`), so a loop has
at most as many connections at once as the process has slots, and the same bound on what waits on
the database. A connection idle longer than `db.PING_IDLE_S` is pinged before it is used (as the
pool's are); one that fails, or whose request was cancelled or timed out, is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.util import await_only, greenlet_spawn

from flexearn.adapters import db

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
        return await_only(_connections(engine).in_turn(until, deadline.remaining_ms(), statements, left))

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
    """One event loop's connections to one database, idle ones kept for the next request."""

    def __init__(self, engine: sa.Engine) -> None:
        args, params = engine.dialect.create_connect_args(engine.url)
        params.setdefault("connect_timeout", db.CONNECT_TIMEOUT_S)
        self._args, self._params = args, params
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []  # last used last

    async def in_turn(
        self, until: float, ms: int, statements: Sequence[db.Statement], left: list[asyncio.Future[Any]]
    ) -> list[list[Any]]:
        """`db.in_turn`'s statements, each in a transaction of its own, in one round trip, in a
        task of their own: awaited until `until`, then left running (added to `left`), their
        connection closed once they end. psycopg itself, cancelled, would ask the server to cancel
        and wait for it, which a hung server never answers."""
        if until <= time.monotonic():
            raise db.DatabaseBusy("the request's budget ran out before its statement was sent")
        query = asyncio.ensure_future(self._query(ms, statements))
        try:
            async with asyncio.timeout(until - time.monotonic()):
                connection, found = await asyncio.shield(query)
        except BaseException as error:
            if not query.done():
                left.append(query)
            query.add_done_callback(_closed_when_done)  # (at once if it ended as the wait did)
            if isinstance(error, TimeoutError):
                raise db.DatabaseBusy("the database did not answer within the request's budget") from None
            raise
        self._idle.append((connection, time.monotonic()))
        return found

    async def _query(
        self, ms: int, statements: Sequence[db.Statement]
    ) -> tuple[psycopg.AsyncConnection[Any], list[list[Any]]]:
        script, values, positions = db.postgres_script(ms, statements)
        connection = await self._take()
        try:
            cursor = psycopg.AsyncClientCursor(connection)
            await cursor.execute(script, values)
            found, at = [], 0
            for position in positions:
                for _ in range(position - at):
                    cursor.nextset()
                at = position
                found.append(list(await cursor.fetchall()))
        except BaseException:  # the connection's state is unknown
            await _close(connection)
            raise
        return connection, found

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


def _closed_when_done(query: asyncio.Future[tuple[psycopg.AsyncConnection[Any], Any]]) -> None:
    """A statement whose request stopped waiting has ended: its connection (if it got one and the
    statement succeeded; else it is closed already) is closed, not kept."""
    if not query.cancelled() and query.exception() is None:
        _background(_close(query.result()[0]))


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
    """Close the running loop's idle connections (a test's; a server's go with its process)."""
    for connections in _LOOPS.pop(asyncio.get_running_loop(), {}).values():
        await connections.close()
