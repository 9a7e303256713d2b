"""PostgreSQL's deferred check that every journal entry balances sums each entry once per
transaction (migration 0011_settle), and still refuses every unbalanced entry: one whose
unbalancing leg comes after other entries' legs, and one unbalanced after it was found balanced
(the constraint set IMMEDIATE)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import wall_ms
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind, AccountRef, compound, leg
from flexearn.domain.money import D
from flexearn.services import accounts
from tests.helpers import T0


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Flexearn]:
    app = Flexearn(postgres_url)
    accounts.add_currency(app.uow(), "USDT", 8)
    yield app
    app.close()


def _entry(conn: sa.Connection) -> int:
    query = sa.insert(t.journal_entry).values(ccy="USDT", kind="test", ref="", ts=T0, created_at=wall_ms())
    return int(conn.execute(query.returning(t.journal_entry.c.id)).scalar_one())


def _legs(conn: sa.Connection, entry: int, *amounts: Decimal) -> None:
    external = repo.account_id(conn, AccountRef.system(AccountKind.EXTERNAL, "USDT"))
    rows = [{"entry_id": entry, "account_id": external, "ccy": "USDT", "amount": a} for a in amounts]
    conn.execute(sa.insert(t.journal_leg).values(rows))  # one statement, whatever the driver


def test_many_balanced_entries_of_many_legs_commit(pg: Flexearn) -> None:
    users = [accounts.create_user(pg.uow(), f"u{i}") for i in range(150)]
    expense = leg(AccountRef.system(AccountKind.INTEREST_EXPENSE, "USDT"), D(-150))
    credits = [leg(AccountRef.funding(user, "USDT"), D(1)) for user in users]
    with pg.uow() as uow:
        repo.post_many(uow.conn, [compound("test", "USDT", [expense, *credits], "t")] * 3, T0)
        uow.commit()
    with pg.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.journal_leg)).scalar() == 3 * 151


def test_an_entry_unbalanced_by_a_leg_written_after_other_entries_is_refused(pg: Flexearn) -> None:
    with pg.engine.connect() as conn:
        first, second = _entry(conn), _entry(conn)
        _legs(conn, first, D(5), D(-5))
        _legs(conn, second, D(2), D(-2))
        _legs(conn, first, D(1))  # the first entry's last leg, after the second's
        with pytest.raises(sa.exc.DatabaseError, match="does not balance"):
            conn.commit()


def test_an_entry_unbalanced_after_an_immediate_check_found_it_balanced_is_refused(pg: Flexearn) -> None:
    with pg.engine.connect() as conn:
        conn.execute(sa.text("SET CONSTRAINTS ALL IMMEDIATE"))
        entry = _entry(conn)
        _legs(conn, entry, D(5), D(-5))  # checked at the end of this statement: balanced
        with pytest.raises(sa.exc.DatabaseError, match="does not balance"):
            _legs(conn, entry, D(1))
