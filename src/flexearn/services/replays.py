"""The replay window in the database: what lets API processes without Redis refuse a signature
that any of them accepted (api/auth.py `DatabaseReplayMemory`)."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flexearn.adapters import tables as t
from flexearn.services.unit_of_work import UnitOfWork


def digest(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()


def first_use(uow: UnitOfWork, signature: str, now_ms: int, ttl_ms: int) -> bool:
    """Remember `signature` until `now_ms + ttl_ms`; False if a process remembers it already."""
    s = t.seen_signature
    key = digest(signature)
    with uow:
        conn = uow.conn
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(s).values(digest=key, expires_at=now_ms + ttl_ms).on_conflict_do_nothing()
        first = conn.execute(insert.returning(s.c.digest)).first() is not None  # (rowcount: -1 here)
        if not first:  # seen: a replay, unless its time ran out (then it is new again)
            renew = sa.update(s).where(s.c.digest == key, s.c.expires_at < now_ms)
            renewed = conn.execute(renew.values(expires_at=now_ms + ttl_ms).returning(s.c.digest)).first()
            first = renewed is not None
        uow.commit(outcome=False)  # a request answered "unavailable" later has still used its signature
    return first


def prune(uow: UnitOfWork, now_ms: int) -> int:
    """Forget the signatures that can no longer verify; how many."""
    s = t.seen_signature
    with uow:
        removed = uow.conn.execute(sa.delete(s).where(s.c.expires_at < now_ms)).rowcount
        uow.commit(outcome=False)
    return int(removed)
