"""Binance's wallets on catalog orders, and auto-subscribe

Revision ID: 0013_earn_wallets
Revises: 0012_key_facades
Create Date: 2026-12-02

`earn_order_wallet`: which of the user's wallets a catalog order took its money from (a
subscription with Binance's `sourceAccount` FUND or ALL) or paid it to (a redemption with
`destAccount` FUND), the parts from funding and from trading, and whether auto-subscribe made it.
Orders without a row (all of them before this revision) were funding's alone.

`earn_auto_subscribe`: the users' flexible products with auto-subscribe on (Binance's
`flexible/setAutoSubscribe`); none before this revision (it was always off).
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = '0013_earn_wallets'
down_revision = '0012_key_facades'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('earn_order_wallet',
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('wallet', sa.String(length=16), nullable=False),
    sa.Column('funding', Amount(), nullable=False),
    sa.Column('trading', Amount(), nullable=False),
    sa.Column('auto', sa.Boolean(), nullable=False),
    sa.CheckConstraint("wallet IN ('funding', 'trading', 'all')", name=op.f('ck_earn_order_wallet_wallet')),
    sa.ForeignKeyConstraint(['order_id'], ['earn_order.id'], name=op.f('fk_earn_order_wallet_order_id_earn_order')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_earn_order_wallet'))
    )
    op.create_table('earn_auto_subscribe',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('since', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['earn_product.id'], name=op.f('fk_earn_auto_subscribe_product_id_earn_product')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_earn_auto_subscribe_user_id_user_account')),
    sa.PrimaryKeyConstraint('user_id', 'product_id', name=op.f('pk_earn_auto_subscribe'))
    )


def downgrade() -> None:
    op.drop_table('earn_auto_subscribe')
    op.drop_table('earn_order_wallet')
