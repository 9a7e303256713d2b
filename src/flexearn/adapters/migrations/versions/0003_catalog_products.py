"""catalog products

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Flexible and fixed products with ladder tiers, holdings, orders (subscribe, redeem, interest,
deductions), the (product, day) settlement marker, reference prices for account totals.
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('earn_product',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('coin', sa.String(length=16), nullable=False),
    sa.Column('period_type', sa.String(length=16), nullable=False),
    sa.Column('period_days', sa.Integer(), nullable=True),
    sa.Column('apy_type', sa.String(length=16), nullable=False),
    sa.Column('advance_redeem', sa.Boolean(), nullable=False),
    sa.Column('settle_method', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('single_min', Amount(), nullable=False),
    sa.Column('single_max', Amount(), nullable=False),
    sa.Column('quota', Amount(), nullable=True),
    sa.Column('subscribe_precision', sa.Integer(), nullable=False),
    sa.Column('profit_precision', sa.Integer(), nullable=False),
    sa.Column('redeem_delay_days', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=True),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('first_day', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("apy_type IN ('single', 'ladder')", name=op.f('ck_earn_product_apy_type')),
    sa.CheckConstraint("level IN ('beginner', 'normal', 'VIP')", name=op.f('ck_earn_product_level')),
    sa.CheckConstraint("period_type IN ('flexible', 'fixed')", name=op.f('ck_earn_product_period_type')),
    sa.CheckConstraint("settle_method IN ('daily', 'maturity')", name=op.f('ck_earn_product_settle_method')),
    sa.CheckConstraint("status IN ('in_progress', 'paused', 'off_line')", name=op.f('ck_earn_product_status')),
    sa.ForeignKeyConstraint(['coin'], ['currency.ccy'], name=op.f('fk_earn_product_coin_currency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_earn_product'))
    )
    op.create_table('reference_price',
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('usdt', Amount(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ccy'], ['currency.ccy'], name=op.f('fk_reference_price_ccy_currency')),
    sa.PrimaryKeyConstraint('ccy', name=op.f('pk_reference_price'))
    )
    op.create_table('earn_holding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', Amount(), nullable=False),
    sa.Column('accrued', Amount(), nullable=False),
    sa.Column('total_profit', Amount(), nullable=False),
    sa.Column('last_profit', Amount(), nullable=False),
    sa.Column('subscribed_at', sa.BigInteger(), nullable=False),
    sa.Column('interest_time', sa.BigInteger(), nullable=False),
    sa.Column('expire_time', sa.BigInteger(), nullable=True),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['earn_product.id'], name=op.f('fk_earn_holding_product_id_earn_product')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_earn_holding_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_earn_holding'))
    )
    with op.batch_alter_table('earn_holding', schema=None) as batch_op:
        batch_op.create_index('ix_earn_holding_product', ['product_id', 'open'], unique=False)
        batch_op.create_index('ix_earn_holding_user', ['user_id'], unique=False)

    op.create_table('earn_product_day',
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('day', sa.BigInteger(), nullable=False),
    sa.Column('holdings', sa.Integer(), nullable=False),
    sa.Column('interest', Amount(), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entry.id'], name=op.f('fk_earn_product_day_entry_id_journal_entry')),
    sa.ForeignKeyConstraint(['product_id'], ['earn_product.id'], name=op.f('fk_earn_product_day_product_id_earn_product')),
    sa.PrimaryKeyConstraint('product_id', 'day', name=op.f('pk_earn_product_day'))
    )
    op.create_table('earn_product_tier',
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('rate_level', sa.Integer(), nullable=False),
    sa.Column('min_step', Amount(), nullable=False),
    sa.Column('max_step', Amount(), nullable=False),
    sa.Column('apy', Amount(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['earn_product.id'], name=op.f('fk_earn_product_tier_product_id_earn_product')),
    sa.PrimaryKeyConstraint('product_id', 'rate_level', name=op.f('pk_earn_product_tier'))
    )
    op.create_table('earn_order',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('holding_id', sa.BigInteger(), nullable=False),
    sa.Column('order_type', sa.String(length=16), nullable=False),
    sa.Column('amount', Amount(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('arrive_at', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("order_type IN ('subscribe', 'redeem', 'pay_interest', 'deduction')", name=op.f('ck_earn_order_order_type')),
    sa.CheckConstraint("status IN ('processing', 'success', 'fail')", name=op.f('ck_earn_order_status')),
    sa.ForeignKeyConstraint(['holding_id'], ['earn_holding.id'], name=op.f('fk_earn_order_holding_id_earn_holding')),
    sa.ForeignKeyConstraint(['product_id'], ['earn_product.id'], name=op.f('fk_earn_order_product_id_earn_product')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_earn_order'))
    )
    with op.batch_alter_table('earn_order', schema=None) as batch_op:
        batch_op.create_index('ix_earn_order_arrival', ['status', 'arrive_at'], unique=False)
        batch_op.create_index('ix_earn_order_user_ts', ['user_id', 'ts'], unique=False)

    # A plain ADD COLUMN: a batch copy of journal_leg on SQLite would drop its append-only triggers
    # (so there the reference is checked by `flexearn ledger check`, not by a foreign key).
    op.add_column('journal_leg', sa.Column('holding_id', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(op.f('fk_journal_leg_holding_id_earn_holding'), 'journal_leg', 'earn_holding', ['holding_id'], ['id'])
    op.create_index(op.f('ix_journal_leg_holding_id'), 'journal_leg', ['holding_id'], unique=False)
    _holding_rules()



def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f('fk_journal_leg_holding_id_earn_holding'), 'journal_leg', type_='foreignkey')
    op.drop_index(op.f('ix_journal_leg_holding_id'), table_name='journal_leg')
    op.drop_column('journal_leg', 'holding_id')

    with op.batch_alter_table('earn_order', schema=None) as batch_op:
        batch_op.drop_index('ix_earn_order_user_ts')
        batch_op.drop_index('ix_earn_order_arrival')

    op.drop_table('earn_order')
    op.drop_table('earn_product_tier')
    op.drop_table('earn_product_day')
    with op.batch_alter_table('earn_holding', schema=None) as batch_op:
        batch_op.drop_index('ix_earn_holding_user')
        batch_op.drop_index('ix_earn_holding_product')

    op.drop_table('earn_holding')
    op.drop_table('reference_price')
    op.drop_table('earn_product')


def _holding_rules() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("earn_holding") as batch:
        for column in ("amount", "accrued", "total_profit"):
            rule = f"{column} >= 0" if postgres else f"substr({column}, 1, 1) <> '-'"
            batch.create_check_constraint(f"{column}_not_negative", rule)
