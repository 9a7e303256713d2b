"""Load shedding: a few requests of a process at the database at once, each within a time budget.

A request that needs the database gets a budget when it arrives (FLEXEARN_API_TIMEOUT). It waits
for one of the process's database slots (FLEXEARN_API_DB_SLOTS) at most FLEXEARN_API_QUEUE_TIMEOUT,
then runs in that slot's thread with the budget's deadline on every transaction it begins (see
`adapters.db.deadline`: the database itself cancels a statement or a lock wait that outlives it).
Whatever the database does, the request is answered when the budget is spent — by the caller, with
the exchange's "service unavailable". A thread the database still holds keeps its slot until it is
let go, so a stuck database fills the slots and further requests are shed at once instead of
queueing behind it; when it answers again, the slots drain and requests pass without a restart.
A PostgreSQL read that runs on the event loop instead (`on_loop`) takes a slot all the same, and a
statement of it that outlives the budget keeps the slot as a thread would.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import sqlalchemy as sa

from flexearn.adapters import db, loop_postgres
from flexearn.config import Settings

log = logging.getLogger("flexearn.api")
P = ParamSpec("P")
T = TypeVar("T")

# How much longer than its budget a request waits for its thread: the database's own timeout, set
# to the budget, usually answers first and more cleanly (its transaction rolled back, its
# connection back in the pool).
GRACE_S = 0.5


class Admission:
    def __init__(self, slots: int = 10, queue_timeout: float = 1.0, timeout: float = 3.0) -> None:
        if slots < 1 or queue_timeout < 0 or timeout <= 0:
            raise ValueError("slots must be at least 1, timeouts positive")
        self.slots, self.queue_timeout, self.timeout = slots, queue_timeout, timeout
        self._threads: ThreadPoolExecutor | None = None
        # One gate per event loop (an asyncio semaphore belongs to one); a server runs one loop.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(settings.api_db_slots, settings.api_queue_timeout, settings.api_timeout)

    def budget(self) -> db.Deadline:
        """The deadline of a request arriving now."""
        return db.Deadline(time.monotonic() + self.timeout)

    async def run(self, deadline: db.Deadline, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a database slot, bounded by `deadline`; `db.DatabaseBusy` when
        no slot frees in time or the work outlives the deadline."""
        loop = asyncio.get_running_loop()
        gate = self._gate()
        await self._enter(gate, deadline)
        context = contextvars.copy_context()  # the request's id reaches the thread's log lines

        def work() -> T:
            with db.deadline(deadline):
                return fn(*args, **kwargs)

        try:
            future = loop.run_in_executor(self._executor(), context.run, work)
        except BaseException:
            gate.release()
            raise
        future.add_done_callback(lambda _: gate.release())  # when the thread is done, not before
        return await _within(future, deadline)

    async def on_loop(
        self, deadline: db.Deadline, engine: sa.Engine, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(*args, **kwargs)` on the event loop, its reads of `engine` (PostgreSQL) awaited
        (`adapters/loop_postgres.py`), in one of the slots `run` uses — the same bound on what waits
        on the database, held as long — and within the same deadline and grace; `db.NotInline` if
        `fn` needs more."""
        gate = self._gate()
        await self._enter(gate, deadline)
        call = functools.partial(fn, *args, **kwargs)
        return await loop_postgres.run(engine, deadline, deadline.at + GRACE_S, call, gate.release)

    async def unqueued(self, fn: Callable[[], T]) -> T:
        """`fn()` under a budget but without a slot: for the health check and the metrics, which
        must answer while the slots are full (they get the pool's spare connections)."""
        deadline = self.budget()
        context = contextvars.copy_context()

        def work() -> T:
            with db.deadline(deadline):
                return fn()

        return await _within(asyncio.get_running_loop().run_in_executor(None, context.run, work), deadline)

    def _gate(self) -> asyncio.Semaphore:
        return self._gates.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(self.slots))

    async def _enter(self, gate: asyncio.Semaphore, deadline: db.Deadline) -> None:
        if not gate.locked():
            await gate.acquire()  # free: taken at once, without yielding
            return
        wait = min(self.queue_timeout, deadline.at - time.monotonic())
        try:
            if wait <= 0:
                raise TimeoutError
            await asyncio.wait_for(gate.acquire(), wait)
        except TimeoutError:
            raise db.DatabaseBusy(f"all {self.slots} database slots stayed busy") from None

    def _executor(self) -> ThreadPoolExecutor:  # made on first use: nothing starts at import
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.slots, thread_name_prefix="flexearn-db")
        return self._threads


async def _within(future: asyncio.Future[T], deadline: db.Deadline) -> T:
    """The thread's result, or `DatabaseBusy` once the deadline (and its grace) has passed; the
    thread itself runs on until the database lets go of it, but may no longer commit.

    "Service unavailable" promises that nothing was written, so a thread that already sent its
    COMMIT is waited for, however long that takes: its outcome is the answer. If the database
    fails after a COMMIT was sent (the connection lost mid-COMMIT), what was committed is unknown:
    that is a system error (500), never "unavailable" — unless the thread learnt that the COMMIT
    did not take (`db.Deadline.did_not_commit`: a signed request's claim, `api/facade.py`).
    """
    future.add_done_callback(_settled)
    try:
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline.at - time.monotonic() + GRACE_S)
        except TimeoutError:
            if deadline.give_up():
                raise db.DatabaseBusy("the database did not answer within the request's budget") from None
        return await future
    except Exception as error:
        if deadline.committed and db.unavailable(error):  # e.g. the connection died during COMMIT
            raise RuntimeError("the database failed after a COMMIT was sent: outcome unknown") from error
        raise


def _settled(future: asyncio.Future[T]) -> None:
    """Read the outcome of a thread nobody waits for any more (its request was answered): its
    error, most often the database's own timeout, is then expected and not worth a traceback."""
    if not future.cancelled() and future.exception() is not None:
        log.debug("a database call answered after its request: %r", future.exception())
