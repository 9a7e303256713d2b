"""Binance's flexible model: a product's real-time APR source, its APR history, BONUS reward orders

Revision ID: 0014_realtime_apr
Revises: 0013_earn_wallets
Create Date: 2026-12-02

`earn_product.apr_source` (manual / market / simulated; NULL, every existing product: Bitget's
model, unchanged) and `apr_walk` (the simulated walk's JSON parameters); `earn_product_apr`, every
change of a real-time product's APR with its time (the day's minutes read their APR from it, and
Binance's `rateHistory`); `earn_order.order_type` may be `pay_bonus` (a day's BONUS rewards, beside
the REALTIME part's `pay_interest`). The CHECK on `order_type` is widened as migration 0009 widens
`ledger_account`'s: altered on PostgreSQL, its text edited in SQLite's schema (a batch copy of
`earn_order` would copy every order). Upgrading only widens it. `ix_earn_order_product_changes`:
a product's subscriptions and redemptions by time (partial: interest orders stay out of it), so a
real-time product's day reads its balance changes in one indexed query.
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = '0014_realtime_apr'
down_revision = '0013_earn_wallets'
branch_labels = None
depends_on = None

OLD = "order_type IN ('subscribe', 'redeem', 'pay_interest', 'deduction')"
NEW = "order_type IN ('subscribe', 'redeem', 'pay_interest', 'deduction', 'pay_bonus')"


def upgrade() -> None:
    op.add_column('earn_product', sa.Column('apr_source', sa.String(16), nullable=True))
    op.add_column('earn_product', sa.Column('apr_walk', sa.Text(), nullable=True))
    op.create_table(
        'earn_product_apr',
        sa.Column('product_id', sa.BigInteger(), nullable=False),
        sa.Column('ts', sa.BigInteger(), nullable=False),
        sa.Column('apr', Amount(), nullable=False),
        sa.ForeignKeyConstraint(
            ['product_id'], ['earn_product.id'], name=op.f('fk_earn_product_apr_product_id_earn_product')
        ),
        sa.PrimaryKeyConstraint('product_id', 'ts', name=op.f('pk_earn_product_apr')),
    )
    _order_types(OLD, NEW)
    changes = sa.text("order_type IN ('subscribe', 'redeem')")
    op.create_index(
        'ix_earn_order_product_changes',
        'earn_order',
        ['product_id', 'ts'],
        sqlite_where=changes,
        postgresql_where=changes,
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql("SELECT count(*) FROM earn_order WHERE order_type = 'pay_bonus'").scalar_one():
        raise RuntimeError("BONUS reward orders exist: they have no place in the older schema")
    op.drop_index('ix_earn_order_product_changes', table_name='earn_order')
    _order_types(NEW, OLD)
    op.drop_table('earn_product_apr')
    # ALTER TABLE … DROP COLUMN on both (SQLite ≥ 3.35): a batch copy of earn_product would have to
    # drop the table that holdings and orders reference.
    op.execute("ALTER TABLE earn_product DROP COLUMN apr_walk")
    op.execute("ALTER TABLE earn_product DROP COLUMN apr_source")


def _order_types(old: str, new: str) -> None:
    """Replace the CHECK on `earn_order.order_type` (SQLite: its text, lang_altertable.html)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_earn_order_order_type'), 'earn_order', type_='check')
        op.create_check_constraint(op.f('ck_earn_order_order_type'), 'earn_order', new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'earn_order'",
        (old, new),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    changed = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'earn_order'").scalar_one()
    if new not in changed:
        raise RuntimeError("the CHECK constraint on earn_order's order_type was not found")
