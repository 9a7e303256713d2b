"""One process at a time holds a named role (the settler), through a lease row in the database.

A lease is a row of `worker_lease`: who holds the role and until when. Taking it and renewing it
are the same single statement — an INSERT … ON CONFLICT DO UPDATE whose update only applies when
the row is ours or has expired — so two processes racing for a free lease cannot both win, on
SQLite (one writer at a time) as on PostgreSQL (the conflicting row is locked and the condition
re-checked on its newest version). Expiry is judged by the database's clock, not the process's:
workers on several hosts then agree on when a lease ran out, whatever their own clocks say.

Why a lease row and not PostgreSQL's session advisory lock: the advisory lock dies with its
connection, which hands over faster after a crash, but it exists on one backend only, it is
silently lost when PostgreSQL restarts or the connection drops (the holder finds out only at its
next query), and nobody else can see who holds it. The row behaves the same on both backends,
says who holds the role and since when, and a holder that cannot reach the database stops
believing it holds the role before anybody else may take it (`Lease.held`). A crashed holder is
replaced once its lease expires, i.e. within the TTL; a holder that stops cleanly hands over at
once by deleting its row.

The lease keeps a single settler for efficiency and clear operations; it is not what makes
settlement exactly-once. Each period is settled in one transaction keyed by its period, so a
second settler — a holder that lost its lease mid-transaction, or `flexearn settle` run by hand —
can only find the period already done.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flexearn.adapters import db
from flexearn.adapters import tables as t

log = logging.getLogger("flexearn.worker")

SETTLER = "settler"


def new_holder() -> str:
    """host:pid:random — unique per process start, and says where the holder runs."""
    return f"{socket.gethostname()[:96]}:{os.getpid()}:{secrets.token_hex(4)}"


def _db_now_ms(dialect: str) -> sa.ColumnElement[int]:
    """The database server's real time in ms, evaluated when the statement runs."""
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()) * 1000, sa.BigInteger)
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86_400_000, sa.BigInteger)


RELEASE_TIMEOUT_MS = 2_000


def try_acquire(engine: sa.Engine, name: str, holder: str, ttl_ms: int) -> bool:
    """Take the lease if it is free or expired, or extend it if `holder` has it; True if held now."""
    dialect = engine.dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t.worker_lease)
    now = _db_now_ms(dialect)
    lease = t.worker_lease.c
    mine = lease.holder == insert.excluded.holder
    statement = (
        insert.values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl_ms)
        .on_conflict_do_update(
            index_elements=[lease.name],
            set_={
                "holder": insert.excluded.holder,
                "acquired_at": sa.case((mine, lease.acquired_at), else_=insert.excluded.acquired_at),
                "expires_at": insert.excluded.expires_at,
            },
            where=mine | (lease.expires_at <= insert.excluded.acquired_at),
        )
        .returning(lease.holder)
    )
    with engine.begin() as conn:
        _bounded(conn, ttl_ms // 3)
        return conn.execute(statement).first() is not None


def _bounded(conn: sa.Connection, ms: int) -> None:
    """On PostgreSQL, give up a lease statement after `ms` (a hung server must not hold the
    heartbeat — or a SIGTERM handover — for longer than the lease lasts)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(int(ms), 100)}")


def release(engine: sa.Engine, name: str, holder: str) -> bool:
    """Give the lease up (only if `holder` has it), so that a standby takes it at its next poll."""
    with engine.begin() as conn:
        _bounded(conn, RELEASE_TIMEOUT_MS)
        deleted = conn.execute(
            sa.delete(t.worker_lease).where(t.worker_lease.c.name == name, t.worker_lease.c.holder == holder)
        )
        return bool(deleted.rowcount)


def current_holder(engine: sa.Engine, name: str) -> str | None:
    """Who holds the lease now (None when nobody does, or the last holder's lease has expired)."""
    lease = t.worker_lease.c
    with db.read_only(engine.connect()) as conn:
        return conn.execute(
            sa.select(lease.holder).where(
                lease.name == name, lease.expires_at > _db_now_ms(engine.dialect.name)
            )
        ).scalar_one_or_none()


class Lease:
    """Holds (or waits for) a lease from a background thread, renewing it while held.

    The thread tries every `ttl / 5` seconds (at most every second while waiting): one statement
    that takes a free lease or extends ours. `held()` is what the settling loop asks between
    transactions; it turns false as soon as a renewal is refused, and also when renewals have
    failed (database unreachable) for as long as the lease lasts, since another process may have
    taken it by then. Changes are logged and passed to `on_change(held)`.
    """

    def __init__(
        self,
        engine: sa.Engine,
        name: str = SETTLER,
        ttl_seconds: float = 10.0,
        *,
        holder: str | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("the lease's TTL must be positive")
        self.engine = engine
        self.name = name
        self.holder = holder or new_holder()
        self.ttl = ttl_seconds
        self._on_change = on_change
        self._lock = threading.Lock()
        self._valid_until = 0.0  # time.monotonic() until which the lease is surely ours
        self._acquired = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def renew_every(self) -> float:
        return self.ttl / 5

    @property
    def poll_every(self) -> float:
        return min(1.0, self.ttl / 5)

    def start(self) -> Lease:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def held(self) -> bool:
        with self._lock:
            return time.monotonic() < self._valid_until

    def wait(self, timeout: float) -> bool:
        """Block until the lease is held (True) or `timeout` seconds pass."""
        self._acquired.wait(timeout)
        return self.held()

    def close(self) -> None:
        """Stop renewing and release the lease if held: a standby takes over at its next poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.ttl, 5.0))
        self._set(False, 0.0)
        try:  # whether or not we think we hold it: a renewal may have landed late (deletes only ours)
            release(self.engine, self.name, self.holder)
        except sa.exc.SQLAlchemyError as error:  # it will expire by itself
            log.warning("could not release the %s lease: %s", self.name, error, extra=self._extra())

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ours = try_acquire(self.engine, self.name, self.holder, int(self.ttl * 1000))
            except Exception as error:  # the heartbeat must outlive any failure; the log says which
                log.warning("could not renew the %s lease: %s", self.name, error, extra=self._extra())
                with self._lock:  # still ours until what we last got runs out
                    valid_until = self._valid_until
                ours = started < valid_until
            else:
                # The database set expires_at after `started`: counting from `started` errs early.
                valid_until = started + self.ttl if ours else 0.0
            if self._stop.is_set():  # closed while this attempt ran: `close` releases, announce nothing
                break
            self._set(ours, valid_until)
            self._stop.wait(self.renew_every if ours else self.poll_every)

    def _set(self, ours: bool, valid_until: float) -> bool:
        """Record the outcome of an attempt and announce a change; returns whether it was held."""
        with self._lock:
            was = self._acquired.is_set()
            self._valid_until = valid_until
            if ours:
                self._acquired.set()
            else:
                self._acquired.clear()
        if ours != was:
            if ours:
                log.info("acquired the %s lease", self.name, extra=self._extra())
            elif self._stop.is_set():
                log.info("releasing the %s lease", self.name, extra=self._extra())
            else:
                log.warning("lost the %s lease", self.name, extra=self._extra())
            if self._on_change is not None:
                self._on_change(ours)
        return was

    def _extra(self) -> dict[str, object]:
        return {"lease": self.name, "holder": self.holder, "ttl_seconds": self.ttl}
