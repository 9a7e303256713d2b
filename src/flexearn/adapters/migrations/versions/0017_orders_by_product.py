"""SQLite: the catalog orders' per-user index led by the product

Revision ID: 0017_orders_by_product
Revises: 0016_history_by_currency
Create Date: 2026-12-02

`ix_earn_order_user_ts` (user_id, ts) becomes `ix_earn_order_product_user_ts` (product_id,
user_id, ts) on SQLite, for the reason of 0016: each product's day is settled in its own
transaction and writes an interest order per holding; led by the user, those orders fell on every
page of the index, which each product's commit wrote to the WAL again. The readers of a user's
orders name the user's products (those of the user's holdings).

Cost: one pass over the orders to build the new index (no table is rebuilt; ids and foreign keys
are untouched), then the old index is dropped. PostgreSQL is unchanged.
"""

from alembic import op

revision = '0017_orders_by_product'
down_revision = '0016_history_by_currency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index('ix_earn_order_product_user_ts', 'earn_order', ['product_id', 'user_id', 'ts'])
    op.drop_index('ix_earn_order_user_ts', table_name='earn_order')


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index('ix_earn_order_user_ts', 'earn_order', ['user_id', 'ts'])
    op.drop_index('ix_earn_order_product_user_ts', table_name='earn_order')
