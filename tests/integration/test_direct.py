"""`db.direct`: a statement through the driver in a unit of work's transaction, on both databases
(real SQLite and PostgreSQL): its amounts exact, its errors raised as SQLAlchemy raises them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from flexearn.adapters import db
from flexearn.adapters.tables import exact
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import accounts

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
