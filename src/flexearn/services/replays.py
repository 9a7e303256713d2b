"""The replay window in the database: what lets API processes without Redis refuse a signature
that any of them accepted (api/auth.py `DatabaseReplayMemory`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flexearn.adapters import db

# The widest time a key spells: 13 digits of wall milliseconds (until the year 2286).
_LAST_MS = 10**13 - 1


def digest(signature: str, sent_ms: int) -> str:
    """The replay window's key of `signature`, signed at `sent_ms` (wall ms): that time in 13
    digits, then the signature's SHA-256 in hex. Keys of one moment sit side by side in the
    table's key index, so a claim adds at its end and the prune removes a run from its start;
    keyed by the hash alone, each claim and each row pruned wrote a page of its own, anywhere in
    the index (bench/README.md, "Thirteenth request pass"). As unique as the hash: a signature
    covers its timestamp, so one signature always comes with one time (a time outside the 13
    digits, which no timely request has, is clamped: only the order suffers)."""
    hashed = hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{min(max(sent_ms, 0), _LAST_MS):013d}{hashed}"


# New, or remembered but expired (then new again): either way a row comes back; a replay, none.
_CLAIMS = (
    "INSERT INTO seen_signature (digest, expires_at) VALUES {rows}"
    " ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at"
    " WHERE seen_signature.expires_at < :now RETURNING digest"
)
CLAIM = _CLAIMS.format(rows="(:digest, :until)")


@dataclass(frozen=True)
class Claim:
    """A signature, signed at `sent_ms`, to remember until `until_ms` (wall ms): made in a
    transaction of its own (`alone`), or with the request's own work (`statement`: one COMMIT or
    round trip for both)."""

    engine: sa.Engine
    signature: str
    sent_ms: int
    now_ms: int
    until_ms: int

    def _params(self) -> dict[str, Any]:
        return {"digest": digest(self.signature, self.sent_ms), "until": self.until_ms, "now": self.now_ms}

    def alone(self) -> bool:
        """True if first: one statement, committed whatever the request's outcome (a request
        answered "unavailable" later has still used its signature)."""
        return bool(db.alone(self.engine, CLAIM, self._params()))

    def statement(self) -> tuple[str, dict[str, Any]]:
        """The claim as a statement, to make in the request's own transaction or beside its read
        (`unit_of_work.joining_first`): it returns a row if first."""
        return CLAIM, self._params()


# At most this many claims in one statement (`firsts`): 2 parameters each, far under SQLite's
# 32,766 and PostgreSQL's 65,535.
CLAIMS_PER_STATEMENT = 500


def firsts(claims: Sequence[Claim]) -> list[bool]:
    """Make `claims` (of one engine, of distinct signatures) in one statement, one transaction: for
    each, whether it was first. Each expired row is claimed anew as `CLAIM` does, judged by the
    earliest of their times (a row that expired in the instant between two of them stays a replay).
    """
    if not claims:
        return []
    if len(claims) > CLAIMS_PER_STATEMENT:
        raise ValueError(f"at most {CLAIMS_PER_STATEMENT} claims in one statement")
    rows = ", ".join(f"(:digest{i}, :until{i})" for i in range(len(claims)))
    params: dict[str, Any] = {"now": min(claim.now_ms for claim in claims)}
    digests = []
    for i, claim in enumerate(claims):
        digests.append(digest(claim.signature, claim.sent_ms))
        params[f"digest{i}"], params[f"until{i}"] = digests[-1], claim.until_ms
    claimed = {found for (found,) in db.alone(claims[0].engine, _CLAIMS.format(rows=rows), params)}
    return [d in claimed for d in digests]


PRUNE_BATCH = 1_000  # signatures forgotten a transaction (see `prune`)

# At most :limit expired rows, by the index on `expires_at`; a row back for each one deleted.
_PRUNE = (
    "DELETE FROM seen_signature WHERE digest IN"
    " (SELECT digest FROM seen_signature WHERE expires_at < :now LIMIT :limit) RETURNING 1"
)


def prune_batch(engine: sa.Engine, now_ms: int, limit: int = PRUNE_BATCH) -> int:
    """Forget at most `limit` of the signatures that can no longer verify, in a transaction of their
    own (`db.alone`: under `db.inline`, on the event loop's own SQLite writer, never waiting);
    how many."""
    return len(db.alone(engine, _PRUNE, {"now": now_ms, "limit": limit}))


def prune(engine: sa.Engine, now_ms: int, *, pause_s: float = 0.0) -> int:
    """Forget the signatures that can no longer verify, `PRUNE_BATCH` a transaction: between
    batches the write lock is let go, and for `pause_s` not taken again, so the claims of the
    requests arriving meanwhile wait for one batch at most (ten seconds of them at 3,000 a second,
    ~30,000 rows, were one DELETE that every request in flight waited for); how many."""
    removed = 0
    while True:
        done = prune_batch(engine, now_ms)
        removed += done
        if done < PRUNE_BATCH:
            return removed
        time.sleep(pause_s)
