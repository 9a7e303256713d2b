"""trading accounts: a user account kind beside funding

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

`trading` (OKX's trading account, Bitget's USDT-M futures account) joins `funding` and `frozen`
among the user-owned ledger accounts, so the CHECK that user accounts and only they have an owner
names it too. Its balance is materialised and kept non-negative by the CHECK every ledger account
already has (`balance_not_negative`, migration 0001).
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OLD = "(user_id IS NULL) = (kind NOT IN ('funding', 'frozen'))"
NEW = "(user_id IS NULL) = (kind NOT IN ('funding', 'frozen', 'trading'))"


def upgrade() -> None:
    _owner_rule(OLD, NEW)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT count(*) FROM ledger_account WHERE kind = 'trading'").scalar_one():
        raise RuntimeError("trading accounts exist: move their money to funding before downgrading")
    _owner_rule(NEW, OLD)


def _owner_rule(old: str, new: str) -> None:
    """Replace the CHECK on ledger_account's owner.

    PostgreSQL alters the constraint. SQLite cannot, and a batch copy of `ledger_account` would
    have to drop the table journal legs reference, so the constraint's text is edited in the
    schema instead, as migration 0004 does for `market` (SQLite's documented procedure for
    changing CHECK constraints, lang_altertable.html, "otheralter"). Upgrading only widens it.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_ledger_account_owner'), 'ledger_account', type_='check')
        op.create_check_constraint(op.f('ck_ledger_account_owner'), 'ledger_account', new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'ledger_account'",
        (old, new),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    changed = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ledger_account'").scalar_one()
    if new not in changed:
        raise RuntimeError("the CHECK constraint on ledger_account's owner was not found")
