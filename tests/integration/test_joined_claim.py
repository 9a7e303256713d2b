"""A signed read's replay claim rides with its read: `db.in_turn`, `UnitOfWork.read_alone` and
`joining_first`, on both databases (real SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import AmountTooLarge
from flexearn.domain.money import D
from flexearn.services import replays, savings
from flexearn.services.idempotency import NestedUnitOfWork
from flexearn.services.unit_of_work import joining_first
from tests.helpers import saver

REFUSED = "replayed"
NO_TABLE = (sqlite3.OperationalError, psycopg.errors.UndefinedTable)  # as the driver raises it
READ_ONLY = (sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)


def _refuse_if_none(rows: list[Any]) -> None:
    if not rows:
        raise RuntimeError(REFUSED)


def _claimed(app: Flexearn, signature: str) -> bool:
    s = t.seen_signature
    with app.engine.connect() as conn:
        key = replays.digest(signature, SENT_MS)
        found = conn.execute(sa.select(s.c.digest).where(s.c.digest == key)).first()
    return found is not None


SENT_MS = 1_764_000_000_000  # when the signatures of these tests were signed


def _claim(app: Flexearn, signature: str) -> replays.Claim:
    now = int(time.time() * 1000)
    return replays.Claim(app.engine, signature, SENT_MS, now, now + 60_000)


@pytest.fixture
def holder(app: Flexearn) -> int:
    return saver(app, D("12.5"))


def test_a_read_takes_the_claim_with_it_and_a_second_read_of_the_signature_is_refused(
    app: Flexearn, holder: int
) -> None:
    claim = _claim(app, "sig-a")
    with joining_first(*claim.statement(), _refuse_if_none) as joining:
        (position,) = savings.positions(app.read_uow(), holder, "USDT")
    assert (position.ccy, position.amt) == ("USDT", D("12.5"))
    assert joining.taken
    assert joining.committed
    assert _claimed(app, "sig-a")
    # the same signature again, as another process would claim it: refused, after its read
    with (
        pytest.raises(RuntimeError, match=REFUSED),
        joining_first(*claim.statement(), _refuse_if_none) as again,
    ):
        savings.positions(app.read_uow(), holder, "USDT")
    assert again.committed  # the claim was answered: nothing left to claim alone
    assert not claim.alone()  # and alone it is a replay too


def test_a_failed_read_commits_no_claim_and_leaves_it_to_be_made_alone(app: Flexearn, holder: int) -> None:
    claim = _claim(app, "sig-b")
    with joining_first(*claim.statement(), _refuse_if_none) as joining, pytest.raises(NO_TABLE):
        app.read_uow().read_alone("SELECT x FROM no_such_table WHERE y = :y", {"y": 1})
    assert joining.taken
    assert not joining.committed
    assert not _claimed(app, "sig-b")
    assert claim.alone()  # the caller's fallback: first, so not a replay


def test_only_the_first_read_carries_the_claim(app: Flexearn, holder: int) -> None:
    claim = _claim(app, "sig-c")
    with joining_first(*claim.statement(), _refuse_if_none) as joining:
        savings.positions(app.read_uow(), holder)
        savings.positions(app.read_uow(), holder)  # would raise if it claimed again
    assert joining.committed
    assert _claimed(app, "sig-c")


def test_a_write_that_commits_first_takes_the_claim(app: Flexearn, holder: int) -> None:
    claim = _claim(app, "sig-d")
    with joining_first(*claim.statement(), _refuse_if_none) as joining:
        savings.purchase(app.uow(), holder, "USDT", D(1), None)
        savings.positions(app.read_uow(), holder, "USDT")  # after it: reads alone
    assert joining.committed
    assert _claimed(app, "sig-d")
    with (
        pytest.raises(RuntimeError, match=REFUSED),
        joining_first(*claim.statement(), _refuse_if_none),
    ):
        savings.purchase(app.uow(), holder, "USDT", D(1), None)
    (position,) = savings.positions(app.read_uow(), holder, "USDT")
    assert position.amt == D("13.5")  # the replayed purchase rolled back


def test_a_write_that_rolls_back_leaves_the_claim_to_the_next_that_commits(
    app: Flexearn, holder: int
) -> None:
    """The claim rides with the first writing unit of work, and goes back if that unit rolls back
    (a redemption of more than is held, here): the next write takes it and commits it."""
    claim = _claim(app, "sig-f")
    with joining_first(*claim.statement(), _refuse_if_none) as joining:
        with pytest.raises(AmountTooLarge):
            savings.redeem(app.uow(), holder, "USDT", D(100))
        assert not joining.taken
        assert not _claimed(app, "sig-f")
        savings.purchase(app.uow(), holder, "USDT", D(1), None)
    assert joining.committed
    assert _claimed(app, "sig-f")
    with (
        db.deadline(db.Deadline(time.monotonic() + 5)),  # as a request's: BEGIN held (PostgreSQL)
        pytest.raises(RuntimeError, match=REFUSED),
        joining_first(*claim.statement(), _refuse_if_none),
    ):
        savings.redeem(app.uow(), holder, "USDT", D(1))
    (position,) = savings.positions(app.read_uow(), holder, "USDT")
    assert position.amt == D("13.5")  # the replayed redemption rolled back


@pytest.mark.postgres
def test_on_postgresql_a_trades_held_writes_go_with_its_commit(postgres_url: str) -> None:
    """A request's purchase ends in one query: its held writes (the balance, the journal's legs,
    the position), then COMMIT — as the server saw it last on that connection."""
    app = Flexearn(postgres_url)
    watcher = db.make_engine(postgres_url, poolclass=sa.NullPool)
    try:
        holder = saver(app, D("12.5"))
        claim = _claim(app, "sig-g")
        deadline = db.Deadline(time.monotonic() + 5)
        with db.deadline(deadline), joining_first(*claim.statement(), _refuse_if_none):
            savings.purchase(app.uow(), holder, "USDT", D(1), None)
        with watcher.connect() as conn:
            lasts = conn.execute(
                sa.text(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND query LIKE '%UPDATE savings_position%'"
                )
            ).scalars().all()
        assert lasts  # the purchases' connections (`saver`'s too, without a deadline)
        for last in lasts:
            assert last.startswith("UPDATE ledger_account SET balance")
            assert "INSERT INTO journal_leg" in last
            assert re.search(r"; UPDATE savings_position SET amt = [^;]+ WHERE id = \d+; COMMIT$", last)
        assert _claimed(app, "sig-g")
    finally:
        watcher.dispose()
        app.close()


def test_a_replayed_claim_still_held_at_commit_is_checked_before_the_commit(app: Flexearn) -> None:
    """A unit of work that only holds writes (`db.later`) until its COMMIT: its claim's rows are
    checked before the COMMIT is sent, so a replay commits none of them."""
    claim = _claim(app, "sig-h")
    assert claim.alone()  # used once already
    write = replays.Claim(app.engine, "sig-h-write", SENT_MS, claim.now_ms, claim.until_ms).statement()

    def hold_and_commit() -> None:  # on SQLite the claim runs, and fails, as the unit begins
        with app.uow() as uow:
            db.later(uow.conn, *write)
            uow.commit()

    with joining_first(*claim.statement(), _refuse_if_none), pytest.raises(RuntimeError, match=REFUSED):
        hold_and_commit()
    assert not _claimed(app, "sig-h-write")


def test_in_turn_commits_each_statement_and_stops_at_the_first_that_fails(app: Flexearn) -> None:
    sql, _ = replays.Claim(app.engine, "x", 0, 0, 0).statement()
    first = {"digest": "in-turn-1", "until": 10**15, "now": 0}
    third = {"digest": "in-turn-3", "until": 10**15, "now": 0}
    with pytest.raises(NO_TABLE):
        db.in_turn(
            app.engine,
            [
                (sql, first, False),
                ("SELECT x FROM no_such_table WHERE y = :y", {"y": 1}, True),
                (sql, third, False),
            ],
        )
    s = t.seen_signature
    with app.engine.connect() as conn:
        digests = set(conn.execute(sa.select(s.c.digest)).scalars())
    assert "in-turn-1" in digests
    assert "in-turn-3" not in digests
    # the pooled connection is usable again, read-only statements refuse to write
    with db.deadline(db.Deadline(time.monotonic() + 5)):
        both = db.in_turn(app.engine, [(sql, first, False), ("SELECT 1 + :a", {"a": 1}, True)])
        assert both == [[], [(2,)]]  # already claimed: no row; then the read
        with pytest.raises(READ_ONLY, match=r"read-only|readonly"):
            db.alone(app.engine, sql, third, read_only=True)
    assert db.alone(app.engine, sql, third) == [("in-turn-3",)]


def test_a_nested_unit_of_work_reads_its_outer_transaction(app: Flexearn, holder: int) -> None:
    """An admin request's use cases run in its one transaction (`NestedUnitOfWork`): a read
    there sees what that transaction wrote, not the database beside it."""
    with app.engine.connect() as conn, conn.begin():
        savings.purchase(NestedUnitOfWork(conn), holder, "USDT", D(2), None)
        (inside,) = savings.positions(NestedUnitOfWork(conn), holder, "USDT")
        assert inside.amt == D("14.5")
        conn.rollback()
    (after,) = savings.positions(app.read_uow(), holder, "USDT")
    assert after.amt == D("12.5")


def test_the_window_is_pruned_a_batch_a_transaction_and_keeps_what_can_still_verify(app: Flexearn) -> None:
    s = t.seen_signature
    expired = 2 * replays.PRUNE_BATCH + 5
    rows = [{"digest": f"old-{i}", "expires_at": 1_000} for i in range(expired)]
    rows += [{"digest": f"live-{i}", "expires_at": 9_000} for i in range(7)]
    with app.engine.begin() as conn:
        conn.execute(sa.insert(s), rows)
    assert replays.prune(app.engine, now_ms=5_000) == expired
    with app.engine.connect() as conn:
        left = set(conn.execute(sa.select(s.c.digest)).scalars())
    assert left == {f"live-{i}" for i in range(7)}
    assert replays.prune(app.engine, now_ms=5_000) == 0
