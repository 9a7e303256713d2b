"""`ledger check` finds each kind of damage a database could suffer behind the engine's back."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, wall_ms
from flexearn.adapters.repository import post
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.ledger import AccountKind, AccountRef, transfer
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, ledger_check, transfers
from tests.helpers import T0, advance, lender, market_world


@pytest.fixture
def busy(app: Flexearn) -> Flexearn:
    """A market with interest paid and a catalog holding: a clean ledger to damage."""
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    user = lender(app, "B", "USDT", D(100), D("0.05"), deposit=D(300))
    product = catalog.create_product(
        app.uow(),
        product_spec.parse(
            {"coin": "USDT", "apyList": [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "5"}]}
        ),
    )
    catalog_trading.subscribe(app.uow(), user, product.id, "flexible", D(50))
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


def test_a_changed_trading_balance_is_found_and_a_negative_one_refused(busy: Flexearn) -> None:
    user = accounts.create_user(busy.uow(), "T")
    accounts.deposit(busy.uow(), user, "USDT", D(40), AccountKind.TRADING)
    transfers.transfer(busy.uow(), user, "USDT", D(15), AccountKind.TRADING, AccountKind.FUNDING)
    assert ledger_check.check(busy.uow()) == []  # a transfer is a balanced entry of the user's two accounts
    trading = sa.update(t.account).where(t.account.c.key == AccountRef.trading(user, "USDT").key)
    found = damage(busy, trading.values(balance=D(26)))
    assert f"account trading:{user}:USDT: balance 26 but its legs sum to 25" in found
    with pytest.raises(sa.exc.IntegrityError, match="balance_not_negative"):  # the database's own CHECK
        damage(busy, trading.values(balance=D(-1)))


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


# --- checkpoints: the incremental check and the full one ----------------------------------------


def forge(app: Flexearn, *legs: tuple[int, Decimal], entry: int | None = None) -> int:
    """Write journal legs behind the engine's back (PostgreSQL: with its triggers off, as a
    restored dump or a hand-edited row could have it); into a new entry unless `entry` is given."""
    with app.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        if entry is None:
            entry = conn.execute(
                sa.insert(t.journal_entry)
                .values(ccy="USDT", kind="forged", ref="", ts=T0, created_at=wall_ms())
                .returning(t.journal_entry.c.id)
            ).scalar_one()
        conn.execute(
            sa.insert(t.journal_leg),
            [{"entry_id": entry, "account_id": a, "ccy": "USDT", "amount": amount} for a, amount in legs],
        )
    return entry


def account_id(app: Flexearn, key: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(t.account.c.id).where(t.account.c.key == key)).scalar_one())


def test_an_incremental_check_verifies_what_followed_its_checkpoint(busy: Flexearn) -> None:
    first = ledger_check.run(busy.engine, checkpoint=True)
    assert (first.violations, first.journal_base, first.checkpoint) == ([], None, 1)
    advance(busy, 2)
    lender(busy, "C", "USDT", D(30), D("0.03"))
    advance(busy, 1)
    incremental = ledger_check.run(busy.engine, checkpoint=True)
    assert (incremental.violations, incremental.journal_base, incremental.checkpoint) == ([], 1, 2)
    full = ledger_check.run(busy.engine, full=True)
    assert (full.violations, full.journal_base, full.history_base) == ([], None, None)
    with busy.engine.connect() as conn:  # the superseded checkpoint's figures are gone
        tables = set(sa.inspect(conn).get_table_names())
    assert {"ledger_checkpoint_positions_2", "ledger_checkpoint_accounts_2"} <= tables
    assert not {"ledger_checkpoint_positions_1", "ledger_checkpoint_accounts_1"} & tables


def test_a_position_altered_after_the_checkpoint_is_found_by_the_incremental_check(busy: Flexearn) -> None:
    ledger_check.run(busy.engine, checkpoint=True)
    advance(busy, 1)
    found = damage(busy, sa.update(t.position).where(t.position.c.id == 1).values(amt=D(150)))
    assert any("position 1: amt 150 but purchases" in v for v in found)
    assert any("savings control account" in v for v in found)
    assert ledger_check.run(busy.engine, checkpoint=True).checkpoint is None  # never on red


def test_an_unbalanced_entry_after_the_checkpoint_is_found_by_the_incremental_check(busy: Flexearn) -> None:
    ledger_check.run(busy.engine, checkpoint=True)
    entry = forge(busy, (account_id(busy, "insurance:USDT"), D(5)))
    report = ledger_check.run(busy.engine)
    assert report.journal_base == 1
    assert f"journal entry {entry} does not balance: legs sum to 5" in report.violations


def test_damage_before_the_checkpoint_is_found_by_the_full_check(busy: Flexearn) -> None:
    """The incremental check takes the checkpoint's figures on trust; the full one re-reads it all."""
    ledger_check.run(busy.engine, checkpoint=True)
    advance(busy, 1)
    old_entry = 1  # a deposit, long before the checkpoint: a balanced pair of legs slipped into it
    forge(
        busy,
        (account_id(busy, "funding:1:USDT"), D(9)),
        (account_id(busy, "external:USDT"), D(-9)),
        entry=old_entry,
    )
    h = t.lending_history
    with busy.engine.begin() as conn:  # and an hour of interest rewritten, before the checkpoint too
        conn.execute(sa.update(h).where(h.c.ts == T0 + HOUR_MS, h.c.position_id == 1).values(earnings=D(1)))
    assert ledger_check.check(busy.uow()) == []
    full = ledger_check.check(busy.uow(), full=True)
    assert any("account funding:1:USDT: balance" in v and "its legs sum to" in v for v in full)
    assert any("position 1: earnings" in v and "lending history pays" in v for v in full)
    assert any(f"USDT: hour {T0 + 2 * HOUR_MS} paid" in v for v in full)


@pytest.mark.postgres
def test_an_entry_committed_after_a_checkpoint_with_a_lower_id_is_still_verified(postgres_url: str) -> None:
    """Ids come from a sequence before commit: an entry in flight when the checkpoint was written
    can commit later below its last id. The checkpoint notes the gap, and the next check reads it."""
    app = Flexearn(postgres_url)
    try:
        market_world(app, demand=D(150))
        user = lender(app, "A", "USDT", D(100), D("0.02"))
        other = lender(app, "B", "USDT", D(100), D("0.05"))
        with app.uow() as uow:  # a deposit, not committed yet
            deposit = transfer(
                "deposit",
                "USDT",
                AccountRef.system(AccountKind.EXTERNAL, "USDT"),
                AccountRef.funding(user, "USDT"),
                D(7),
                ref="late",
            )
            late = post(uow.conn, deposit, T0)
            later = accounts.deposit(app.uow(), other, "USDT", D(1))  # committed first
            checkpoint = ledger_check.run(app.engine, checkpoint=True)
            uow.commit()
        assert late < later
        assert checkpoint.violations == []
        assert ledger_check.check(app.uow()) == []  # the late deposit's legs are counted
        with app.engine.connect() as conn:
            gaps = conn.execute(sa.select(t.ledger_checkpoint.c.gaps)).scalar_one()
        assert gaps == str(late)
        forge(app, (account_id(app, "external:USDT"), D(3)), entry=late)  # and verified
        assert any(f"journal entry {late} does not balance" in v for v in ledger_check.check(app.uow()))
    finally:
        app.close()


def test_lending_history_altered_or_duplicated_after_the_checkpoint_is_found(busy: Flexearn) -> None:
    ledger_check.run(busy.engine, checkpoint=True)
    advance(busy, 1)  # one hour of history after the checkpoint: PostgreSQL joins it row by row
    h, last = t.lending_history, T0 + 3 * HOUR_MS
    mine = sa.and_(h.c.ts == last, h.c.position_id == 1)
    with busy.engine.begin() as conn:
        earned = conn.execute(sa.select(h.c.earnings).where(mine)).scalar_one()
        conn.execute(sa.update(h).where(mine).values(earnings=D(1)))
    found = ledger_check.check(busy.uow())
    assert any("position 1: earnings" in v and "lending history pays" in v for v in found)
    assert any(f"USDT: hour {last + HOUR_MS} paid" in v for v in found)
    copied = [c for c in h.c if c.name != "id"]
    with busy.engine.begin() as conn:  # put back; then the row written twice
        conn.execute(sa.update(h).where(mine).values(earnings=earned))
        conn.execute(sa.insert(h).from_select([c.name for c in copied], sa.select(*copied).where(mine)))
    found = ledger_check.check(busy.uow())
    assert any(f"USDT: hour {last + HOUR_MS} paid" in v for v in found)
