"""`ledger check` finds each kind of damage a database could suffer behind the engine's back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, wall_ms
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import catalog, ledger_check
from tests.helpers import T0, advance, lender, market_world


@pytest.fixture
def busy(app: Flexearn) -> Flexearn:
    """A market with interest paid and a catalog holding: a clean ledger to damage."""
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    user = lender(app, "B", "USDT", D(100), D("0.05"), deposit=D(300))
    product = catalog.create_product(
        app.uow(),
        {"coin": "USDT", "apyList": [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "5"}]},
    )
    catalog.subscribe(app.uow(), user, product.id, "flexible", D(50))
    advance(app, 3)
    assert ledger_check.check(app.uow()) == []
    return app


def damage(app: Flexearn, statement: sa.Executable) -> list[str]:
    with app.engine.begin() as conn:
        conn.execute(statement)
    return ledger_check.check(app.uow())


def test_a_changed_user_balance_is_found(busy: Flexearn) -> None:
    found = damage(busy, sa.update(t.account).where(t.account.c.kind == "funding").values(balance=D(7)))
    assert any("balance 7 but its legs sum" in v for v in found)


def test_a_changed_position_is_found(busy: Flexearn) -> None:
    found = damage(busy, sa.update(t.position).where(t.position.c.id == 1).values(amt=D(150)))
    assert any("position 1: amt 150" in v for v in found)
    assert any("savings control account" in v for v in found)


def test_a_changed_holding_is_found(busy: Flexearn) -> None:
    found = damage(busy, sa.update(t.holding).values(amount=D(51)))
    assert any("earn control account" in v for v in found)


def test_a_missing_hour_is_found(busy: Flexearn) -> None:
    found = damage(busy, sa.delete(t.market_hour).where(t.market_hour.c.hour == T0 + 2 * HOUR_MS))
    assert any("missing before it" in v for v in found)


def test_an_unbalanced_entry_is_found_or_refused(busy: Flexearn) -> None:
    with busy.engine.begin() as conn:
        entry = conn.execute(
            sa.insert(t.journal_entry)
            .values(ccy="USDT", kind="forged", ref="", ts=T0, created_at=wall_ms())
            .returning(t.journal_entry.c.id)
        ).scalar_one()
    statement = sa.insert(t.journal_leg).values(entry_id=entry, account_id=1, ccy="USDT", amount=D(5))
    if busy.engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="does not balance"):
            damage(busy, statement)  # the deferred constraint trigger refuses the commit
    else:
        assert any(f"journal entry {entry} does not balance" in v for v in damage(busy, statement))


def test_journal_rows_cannot_be_updated_or_deleted(busy: Flexearn) -> None:
    for statement in (sa.update(t.journal_leg).values(amount=D(1)), sa.delete(t.journal_entry)):
        with (
            pytest.raises(sa.exc.DatabaseError, match="never updated or deleted"),
            busy.engine.begin() as conn,
        ):
            conn.execute(statement)
