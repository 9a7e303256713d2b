"""The audit log of operator actions: who changed what, when, and how it was answered."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.services.unit_of_work import UnitOfWork

SUMMARY_LIMIT = 2000


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: int  # real time, ms
    actor: str
    token: str
    method: str
    path: str
    summary: str
    status: int
    error: str
    request_id: str


def record(
    uow: UnitOfWork,
    *,
    actor: str,
    token: str,
    method: str,
    path: str,
    summary: str,
    status: int,
    error: str = "",
    request_id: str = "",
) -> int:
    values = {
        "at": wall_ms(),
        "actor": actor[:128],
        "token": token[:64],
        "method": method[:8],
        "path": path[:512],
        "summary": summary[:SUMMARY_LIMIT],
        "status": status,
        "error": error[:64],
        "request_id": request_id[:64],
    }
    with uow:
        entry_id = uow.conn.execute(
            sa.insert(t.audit_log).values(**values).returning(t.audit_log.c.id)
        ).scalar_one()
        uow.commit()
    return int(entry_id)


def entries(uow: UnitOfWork, *, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    """Newest first; `before_id` pages to older entries."""
    a = t.audit_log
    query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(a.c.id < before_id)
    with uow:
        rows = uow.conn.execute(query).all()
    return [AuditEntry(*row) for row in rows]


def latest(uow: UnitOfWork, method: str, path: str) -> AuditEntry | None:
    """The newest entry of an action, e.g. the sandbox's record that it built its world."""
    a = t.audit_log
    query = sa.select(a).where(a.c.method == method, a.c.path == path).order_by(a.c.id.desc()).limit(1)
    with uow:
        row = uow.conn.execute(query).first()
    return None if row is None else AuditEntry(*row)
