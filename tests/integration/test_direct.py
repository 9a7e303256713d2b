"""`db.direct`, `db.batch` and `db.later`: statements through the driver in a unit of work's
transaction, on both databases (real SQLite and PostgreSQL): run in turn, their amounts exact and
their parameters quoted, their errors raised as SQLAlchemy raises them, a held write sent before
whatever follows it and dropped with a rollback."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters import tables as t
from flexearn.adapters.tables import exact
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts, gate, savings
from tests.helpers import saver

CURRENCY = "INSERT INTO currency (ccy, precision, enabled) VALUES (:ccy, :precision, :enabled)"


def test_a_refused_statement_raises_sqlalchemys_error_and_its_transaction_writes_nothing(
    app: Flexearn,
) -> None:
    accounts.add_currency(app.uow(), "USDT", 8)
    with app.uow() as uow:
        db.direct(uow.conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
        with pytest.raises(sa.exc.IntegrityError):
            db.direct(uow.conn, CURRENCY, {"ccy": "USDT", "precision": 8, "enabled": True})  # taken
    with app.uow() as uow:
        found = db.direct(uow.conn, "SELECT ccy FROM currency ORDER BY ccy", {})
    assert found == [("USDT",)]


def test_amounts_go_in_and_come_back_exact(app: Flexearn) -> None:
    user = accounts.create_user(app.uow(), "direct")
    accounts.add_currency(app.uow(), "USDT", 8)
    accounts.deposit(app.uow(), user, "USDT", D("1"))
    amount = D("12345678901234567.000000000000000001")  # beyond a float's digits
    with app.uow() as uow:  # the user's one account: funding USDT
        db.direct(
            uow.conn,
            "UPDATE ledger_account SET balance = :b WHERE user_id = :u",
            {"b": amount, "u": user},
        )
        ((back,),) = db.direct(uow.conn, "SELECT balance FROM ledger_account WHERE user_id = :u", {"u": user})
    assert exact(back) == amount


def _currencies(app: Flexearn) -> list[str]:
    with app.uow() as uow:
        return [ccy for (ccy,) in db.direct(uow.conn, "SELECT ccy FROM currency ORDER BY ccy", {})]


def test_a_batch_runs_its_statements_in_turn_each_seeing_those_before_it(app: Flexearn) -> None:
    accounts.add_currency(app.uow(), "USDT", 8)
    amount = D("12345678901234567.000000000000000001")
    with app.uow() as uow:
        inserted, read, updated, exact_back, none = db.batch(
            uow.conn,
            [
                ("INSERT INTO currency (ccy, precision, enabled) VALUES (:ccy, :p, :on) RETURNING ccy", {
                    "ccy": "BTC", "p": 8, "on": True
                }),
                ("SELECT ccy, precision FROM currency ORDER BY ccy", {}),
                ("UPDATE currency SET precision = :p WHERE ccy = :ccy", {"p": 6, "ccy": "BTC"}),
                ("SELECT :amount, :text", {"amount": amount, "text": "it's; -- %s %(x)s"}),
                ("SELECT ccy FROM currency WHERE ccy = :ccy", {"ccy": "none"}),
            ],
        )
        assert inserted == [("BTC",)]
        assert read == [("BTC", 8), ("USDT", 8)]
        assert updated == []
        ((back, text),) = exact_back
        assert (exact(back), text) == (amount, "it's; -- %s %(x)s")  # exact, and quoted: not spliced
        assert none == []
        assert db.direct(uow.conn, "SELECT precision FROM currency WHERE ccy = 'BTC'", {}) == [(6,)]
        uow.commit()
    assert _currencies(app) == ["BTC", "USDT"]


def test_a_failing_statement_ends_its_batch_and_its_transaction_writes_nothing(app: Flexearn) -> None:
    accounts.add_currency(app.uow(), "USDT", 8)
    with app.uow() as uow, pytest.raises(sa.exc.IntegrityError):
        db.batch(
            uow.conn,
            [
                (CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True}),
                (CURRENCY, {"ccy": "USDT", "precision": 8, "enabled": True}),  # taken
                (CURRENCY, {"ccy": "ETH", "precision": 8, "enabled": True}),
            ],
        )
    assert _currencies(app) == ["USDT"]


def test_a_held_write_goes_with_the_next_statement_whichever_way_it_is_sent(app: Flexearn) -> None:
    with app.uow() as uow:
        db.later(uow.conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
        assert db.direct(uow.conn, "SELECT ccy FROM currency", {}) == [("BTC",)]
        db.later(uow.conn, CURRENCY, {"ccy": "ETH", "precision": 8, "enabled": True})
        assert uow.conn.execute(sa.text("SELECT count(*) FROM currency")).scalar() == 2  # SQLAlchemy's
        db.later(uow.conn, CURRENCY, {"ccy": "SOL", "precision": 8, "enabled": True})
        (((count,),),) = db.batch(uow.conn, [("SELECT count(*) FROM currency", {})])
        assert count == 3
        db.later(uow.conn, CURRENCY, {"ccy": "USDT", "precision": 8, "enabled": True})
        uow.commit()  # sent before the COMMIT
    assert _currencies(app) == ["BTC", "ETH", "SOL", "USDT"]


def test_a_held_write_is_dropped_with_its_rollback_and_never_sent_later(app: Flexearn) -> None:
    with app.uow() as uow:
        db.later(uow.conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
    for ccy in ("USDT", "ETH", "SOL"):  # the pool's connections again, each a transaction of its own
        accounts.add_currency(app.uow(), ccy, 8)
    assert _currencies(app) == ["ETH", "SOL", "USDT"]


def test_a_held_write_that_fails_fails_its_commit_and_nothing_is_written(app: Flexearn) -> None:
    accounts.add_currency(app.uow(), "USDT", 8)
    with app.uow() as uow:
        db.direct(uow.conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})

        def taken_then_commit() -> None:  # raised on SQLite at once, on PostgreSQL with the COMMIT
            db.later(uow.conn, CURRENCY, {"ccy": "USDT", "precision": 8, "enabled": True})
            uow.commit()

        with pytest.raises(sa.exc.IntegrityError):
            taken_then_commit()
    accounts.add_currency(app.uow(), "ETH", 8)  # the connection serves the next transaction
    assert _currencies(app) == ["ETH", "USDT"]


def test_a_held_write_that_fails_a_bare_commit_leaves_no_transaction_behind(app: Flexearn) -> None:
    """Outside a unit of work (a connection's own COMMIT), the held write fails the COMMIT and the
    connection goes back to the pool rolled back: the next transaction on it is not refused."""
    accounts.add_currency(app.uow(), "USDT", 8)

    def taken_then_commit(conn: sa.Connection) -> None:
        db.later(conn, CURRENCY, {"ccy": "USDT", "precision": 8, "enabled": True})
        conn.commit()

    with app.engine.connect() as conn:
        conn.begin()
        db.direct(conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
        with pytest.raises(sa.exc.IntegrityError):
            taken_then_commit(conn)
    accounts.add_currency(app.uow(), "ETH", 8)  # the pool's last connection in: that one
    assert _currencies(app) == ["ETH", "USDT"]


def test_a_held_write_goes_with_its_transaction_only(app: Flexearn) -> None:
    """On one connection: dropped with a rollback, kept past a savepoint's rollback if held before
    it, dropped with the savepoint if held inside it."""
    with app.engine.connect() as conn:
        conn.begin()
        db.later(conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
        conn.rollback()
        conn.begin()
        assert db.direct(conn, "SELECT ccy FROM currency", {}) == []
        db.later(conn, CURRENCY, {"ccy": "ETH", "precision": 8, "enabled": True})
        savepoint = conn.begin_nested()
        db.later(conn, CURRENCY, {"ccy": "SOL", "precision": 8, "enabled": True})
        savepoint.rollback()
        conn.commit()
    assert _currencies(app) == ["ETH"]


def test_a_statement_refused_before_it_is_sent_keeps_what_is_held(app: Flexearn) -> None:
    if app.engine.dialect.name == "sqlite":
        pytest.skip("SQLite holds nothing: `later` runs at once")
    with app.uow() as uow:
        db.later(uow.conn, CURRENCY, {"ccy": "BTC", "precision": 8, "enabled": True})
        with pytest.raises(sa.exc.DataError):  # PostgreSQL text holds no NUL: refused by psycopg
            db.direct(uow.conn, "SELECT :text", {"text": "a\x00b"})
        uow.commit()
    assert _currencies(app) == ["BTC"]


def test_a_trade_during_an_open_hour_is_refused_by_the_gate_not_by_a_held_row_lock(app: Flexearn) -> None:
    """A range of the hour being applied holds its positions' row locks; a trade on one of them
    is refused as the open hour (`PeriodOpen`, polled until its deadline), never left waiting on
    the lock (PostgreSQL's lock timeout, a different refusal)."""
    if app.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no row locks: a writer holds the whole database")
    user = saver(app, D(10))
    with app.engine.begin() as conn:
        opened = {"kind": gate.HOUR, "key": "USDT", "period": 1, "plan": "{}", "opened_at": 0}
        conn.execute(sa.insert(t.settlement_open).values(opened))
    applying = threading.Event()
    done = threading.Event()

    def apply_a_range() -> None:  # the settling worker: its positions locked until it commits
        with app.engine.connect() as conn:
            conn.begin()
            db.direct(conn, "UPDATE savings_position SET loan = loan WHERE user_id = :u", {"u": user})
            applying.set()
            done.wait(10)
            conn.commit()

    worker = threading.Thread(target=apply_a_range)
    worker.start()
    try:
        assert applying.wait(10)
        started = time.monotonic()
        with db.deadline(db.Deadline(started + 0.5)), pytest.raises(gate.PeriodOpen):
            savings.purchase(app.uow(), user, "USDT", D(1))
        assert time.monotonic() - started < 2
    finally:
        done.set()
        worker.join()
