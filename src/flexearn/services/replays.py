"""The replay window in the database: what lets API processes without Redis refuse a signature
that any of them accepted (api/auth.py `DatabaseReplayMemory`)."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.services.unit_of_work import UnitOfWork


def digest(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()


# New, or remembered but expired (then new again): either way a row comes back; a replay, none.
CLAIM = (
    "INSERT INTO seen_signature (digest, expires_at) VALUES (:digest, :until)"
    " ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE seen_signature.expires_at < :now RETURNING digest"
)


def first_use(engine: sa.Engine, signature: str, now_ms: int, ttl_ms: int) -> bool:
    """Remember `signature` until `now_ms + ttl_ms`; False if a process remembers it already.

    One statement, committed on its own whatever the request's outcome (a request answered
    "unavailable" later has still used its signature)."""
    params = {"digest": digest(signature), "until": now_ms + ttl_ms, "now": now_ms}
    return bool(db.alone(engine, CLAIM, params))


def prune(uow: UnitOfWork, now_ms: int) -> int:
    """Forget the signatures that can no longer verify; how many."""
    s = t.seen_signature
    with uow:
        removed = uow.conn.execute(sa.delete(s).where(s.c.expires_at < now_ms)).rowcount
        uow.commit(outcome=False)
    return int(removed)
