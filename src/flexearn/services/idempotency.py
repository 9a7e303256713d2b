"""Idempotency keys: a retried admin call returns its first answer instead of acting twice.

The semantics are Stripe's and the IETF draft "The Idempotency-Key HTTP Header Field": a key is
scoped to the admin token that sent it; the first request with it runs, and its answer (status and
body) is stored with a SHA-256 fingerprint of the method, path and body; a repeat with the same
fingerprint gets that answer back without running again; a repeat with another fingerprint is
refused (`KeyReused`), and so is a repeat while the first is still running (`KeyInUse`). Keys
expire after `KEY_TTL_MS`; `prune` deletes expired ones.

The key is written in the same transaction as the action: the use cases run in savepoints of one
request transaction (`NestedUnitOfWork`), and the key row is inserted before it commits. A crash
therefore leaves both or neither. Work that opens transactions of its own (settlement) cannot join
it: such a request stores its key as `PENDING` with its first part, and whoever finds it pending
(the request itself, or a retry after a crash) runs the rest — which must be safe to repeat — and
records the answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.adapters.secrets import SecretBox
from flexearn.domain.errors import Conflict, FlexearnError, InvalidParameter
from flexearn.services.unit_of_work import UnitOfWork

KEY_TTL_MS = 24 * 3_600_000  # as Stripe: a key is remembered for a day, then may be used afresh
PENDING = 0  # not an HTTP status: the first part committed, the answer is not recorded yet
_LOCK_SALT = b"flexearn.idempotency\x00"


class KeyReused(FlexearnError):
    """The key was first used for another method, path or body."""

    code = "idempotency_key_reused"


class KeyInUse(Conflict):
    """A request with this key is still running; retry once it has been answered."""

    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class KeyedRequest:
    token: str  # the admin token's name: keys of two tokens never collide
    key: str
    method: str
    path: str  # with its query string, if any
    body_sha256: str  # of the method, path and body: see `fingerprint`


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # the JSON text sent, byte for byte the same on a replay
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes | None) -> str:
    """SHA-256 of the method, path and the body's JSON in a canonical form.

    The body is compared as JSON, not bytes, so a client that re-serialises its retry with other
    spacing or key order is still recognised; numbers keep their written form (`1.0` ≠ `1`), so
    two bodies that differ at all never share a fingerprint. `None` is a route without a body.
    """
    try:
        text = "" if body is None else _canonical(json.loads(body, parse_float=Decimal))
    except RecursionError:
        raise InvalidParameter("body", "nested too deeply") from None
    return hashlib.sha256(f"{method}\n{path}\n{text}".encode()).hexdigest()


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_canonical(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return str(value) if isinstance(value, Decimal) else json.dumps(value)


class NestedUnitOfWork(UnitOfWork):
    """A use case's unit of work inside a transaction it does not own: a savepoint of it.

    `commit()` releases the savepoint into the outer transaction, leaving without it rolls the
    savepoint back, exactly as the use case expects of its own transaction; the outer owner
    commits (or rolls back) the whole.
    """

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__(conn.engine)
        self._outer = conn
        self._savepoint: sa.NestedTransaction | None = None

    def __enter__(self) -> NestedUnitOfWork:
        self._savepoint = self._outer.begin_nested()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        savepoint, self._savepoint = self._savepoint, None
        try:
            if savepoint is not None and savepoint.is_active:
                savepoint.rollback()
        except sa.exc.DBAPIError:
            if exc is None:
                raise
            # As UnitOfWork: the connection died with the error already on its way out.

    @property
    def conn(self) -> sa.Connection:
        if self._savepoint is None:
            raise RuntimeError("the unit of work is not open")
        return self._outer

    def commit(self, *, outcome: bool = True) -> None:
        if self._savepoint is None:
            raise RuntimeError("the unit of work is not open")
        self._savepoint.commit()

    def read_alone(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """In the outer transaction, which may hold this request's own writes, not beside it."""
        return list(self._outer.execute(sa.text(sql), params))


UnitsOfWork = Callable[[], UnitOfWork]
# Runs the action with units of work inside the request's transaction; returns its answer, or
# None when the rest of the work (`finish`) must run after that transaction commits.
Action = Callable[[UnitsOfWork], Answer | None]


def run(
    engine: sa.Engine,
    request: KeyedRequest,
    box: SecretBox,
    action: Action,
    finish: Callable[[], Answer] | None = None,
    record: Callable[[UnitOfWork, Answer], object] | None = None,
) -> Answer:
    """Answer `request` once: run `action` (and `finish`), or replay the answer stored for its key.

    Answers are stored encrypted under the master key (a new API key's answer holds its secret).
    An exception from `action` or `finish` stores nothing: the action is rolled back and a retry
    with the same key runs afresh (or, for a pending key, finishes afresh). `record` (the audit
    log) is called with the action's answer in the action's transaction, so that an action is
    never committed without its record; not for an answer left to `finish`.
    """
    with UnitOfWork(engine) as uow:
        _lock(uow.conn, request)
        row = _find(uow.conn, request)
        if row is None:
            with uow.conn.begin_nested() as savepoint:
                answer = action(lambda: NestedUnitOfWork(uow.conn))
                if answer is not None and answer.status >= 400:
                    savepoint.rollback()  # an error answer writes nothing but its key
            if answer is None and finish is None:
                raise TypeError("an action that leaves its answer to `finish` needs a `finish`")
            _insert(uow.conn, request, answer, box)
            if answer is not None and record is not None:
                record(NestedUnitOfWork(uow.conn), answer)
            uow.commit()
            if answer is not None:
                return answer
        elif row.status != PENDING:
            return Answer(row.status, box.decrypt(row.response), replayed=True)
        elif finish is None:
            raise KeyInUse("the first request with this key is still running", param="Idempotency-Key")
    assert finish is not None
    return _record(engine, request, finish(), box)


def _lock(conn: sa.Connection, request: KeyedRequest) -> None:
    """Make a concurrent request with the same key wait its turn (SQLite) or refuse (PostgreSQL).

    SQLite's BEGIN IMMEDIATE already serialises writers, so the repeat runs after the first has
    committed and replays it. On PostgreSQL a transaction-scoped advisory lock on the key is tried
    without waiting, as the draft asks (409 while the first is in flight); it is released when the
    transaction ends, after its commit is visible.
    """
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.sha256(_LOCK_SALT + f"{request.token}\x00{request.key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_id))).scalar_one():
        raise KeyInUse("a request with this key is still running", param="Idempotency-Key")


def _find(conn: sa.Connection, request: KeyedRequest) -> Any:
    """The key's unexpired row (an expired one is deleted: its key may be used afresh), or None."""
    k = t.idempotency_key
    mine = sa.and_(k.c.token == request.token, k.c.key == request.key)
    row = conn.execute(sa.select(k).where(mine)).first()
    if row is None:
        return None
    if row.created_at < wall_ms() - KEY_TTL_MS:
        conn.execute(sa.delete(k).where(mine))
        return None
    if (row.method, row.path, row.body_sha256) != (request.method, request.path, request.body_sha256):
        raise KeyReused(
            f"this Idempotency-Key was first used for {row.method} {row.path} with another body; "
            "use a new key for a new request",
            param="Idempotency-Key",
        )
    return row


def _insert(conn: sa.Connection, request: KeyedRequest, answer: Answer | None, box: SecretBox) -> None:
    conn.execute(
        sa.insert(t.idempotency_key).values(
            token=request.token,
            key=request.key,
            method=request.method,
            path=request.path,
            body_sha256=request.body_sha256,
            status=PENDING if answer is None else answer.status,
            response="" if answer is None else box.encrypt(answer.body),
            created_at=wall_ms(),
        )
    )


def _record(engine: sa.Engine, request: KeyedRequest, answer: Answer, box: SecretBox) -> Answer:
    """Store a pending key's answer; if another finisher stored one first, that one is the answer."""
    k = t.idempotency_key
    mine = sa.and_(k.c.token == request.token, k.c.key == request.key)
    with UnitOfWork(engine) as uow:
        stored = uow.conn.execute(
            sa.update(k).where(mine, k.c.status == PENDING).values(
                status=answer.status, response=box.encrypt(answer.body)
            )
        ).rowcount
        row = None if stored else uow.conn.execute(sa.select(k.c.status, k.c.response).where(mine)).first()
        uow.commit()
    if row is None:  # stored here (or the key was pruned meanwhile): this answer stands
        return answer
    return Answer(row.status, box.decrypt(row.response), replayed=True)


def prune(engine: sa.Engine, *, now_ms: int | None = None, ttl_ms: int = KEY_TTL_MS) -> int:
    """Delete the keys older than `ttl_ms` (one DELETE on the created_at index); how many went.

    A `scheduler.Maintenance` job for the settler's housekeeping: an expired key still there is
    ignored by `run` anyway, so pruning late only costs space.
    """
    cutoff = (wall_ms() if now_ms is None else now_ms) - ttl_ms
    with UnitOfWork(engine) as uow:
        deleted = uow.conn.execute(
            sa.delete(t.idempotency_key).where(t.idempotency_key.c.created_at < cutoff)
        ).rowcount
        uow.commit()
    return int(deleted)
