"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Tables from `flexearn.adapters.tables`, then the ledger rules the database can enforce itself:
non-negative user balances and positions, no zero legs, append-only journal rows, and (PostgreSQL)
a deferred check that every journal entry's legs sum to zero.
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('business_anchor', sa.BigInteger(), nullable=False),
    sa.Column('real_anchor', sa.BigInteger(), nullable=False),
    sa.Column('speed', Amount(), nullable=False),
    sa.CheckConstraint("mode IN ('real', 'simulated')", name=op.f('ck_clock_mode')),
    sa.CheckConstraint('id = 1', name=op.f('ck_clock_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clock'))
    )
    op.create_table('currency',
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('precision', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.CheckConstraint('precision >= 0 AND precision <= 18', name=op.f('ck_currency_precision_range')),
    sa.PrimaryKeyConstraint('ccy', name=op.f('pk_currency'))
    )
    op.create_table('lending_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('position_id', sa.BigInteger(), nullable=False),
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('amt', Amount(), nullable=False),
    sa.Column('earnings', Amount(), nullable=False),
    sa.Column('rate', Amount(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lending_history'))
    )
    with op.batch_alter_table('lending_history', schema=None) as batch_op:
        batch_op.create_index('ix_lending_history_user_ts', ['user_id', 'ts'], unique=False)

    op.create_table('user_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("level IN ('beginner', 'normal', 'VIP')", name=op.f('ck_user_account_level')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('name', name=op.f('uq_user_account_name'))
    )
    op.create_table('journal_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=128), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ccy'], ['currency.ccy'], name=op.f('fk_journal_entry_ccy_currency')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entry'))
    )
    op.create_table('ledger_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=96), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('balance', Amount(), nullable=True),
    sa.CheckConstraint("(user_id IS NULL) = (kind NOT IN ('funding', 'frozen'))", name=op.f('ck_ledger_account_owner')),
    sa.CheckConstraint('(balance IS NULL) = (user_id IS NULL)', name=op.f('ck_ledger_account_materialised')),
    sa.ForeignKeyConstraint(['ccy'], ['currency.ccy'], name=op.f('fk_ledger_account_ccy_currency')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_ledger_account_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_account')),
    sa.UniqueConstraint('key', name=op.f('uq_ledger_account_key'))
    )
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_account_user', ['user_id', 'ccy'], unique=False)

    op.create_table('market',
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('insurance_fee', Amount(), nullable=False),
    sa.Column('demand_source', sa.String(length=16), nullable=False),
    sa.Column('demand', Amount(), nullable=False),
    sa.Column('borrow_rate', Amount(), nullable=False),
    sa.Column('simulation', sa.Text(), nullable=False),
    sa.Column('first_hour', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("demand_source IN ('static', 'simulated')", name=op.f('ck_market_demand_source')),
    sa.CheckConstraint("mode IN ('auction', 'pro_rata')", name=op.f('ck_market_mode')),
    sa.ForeignKeyConstraint(['ccy'], ['currency.ccy'], name=op.f('fk_market_ccy_currency')),
    sa.PrimaryKeyConstraint('ccy', name=op.f('pk_market'))
    )
    op.create_table('market_hour',
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('hour', sa.BigInteger(), nullable=False),
    sa.Column('demand', Amount(), nullable=False),
    sa.Column('borrow_rate', Amount(), nullable=False),
    sa.Column('lender_rate', Amount(), nullable=False),
    sa.Column('pool_rate', Amount(), nullable=False),
    sa.Column('supply', Amount(), nullable=False),
    sa.Column('lent', Amount(), nullable=False),
    sa.Column('interest_paid', Amount(), nullable=False),
    sa.Column('insurance_fee', Amount(), nullable=False),
    sa.Column('borrower_paid', Amount(), nullable=False),
    sa.Column('rounding', Amount(), nullable=False),
    sa.Column('demand_state', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('hour = (hour / 3600000) * 3600000', name=op.f('ck_market_hour_on_the_hour')),
    sa.ForeignKeyConstraint(['ccy'], ['market.ccy'], name=op.f('fk_market_hour_ccy_market')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entry.id'], name=op.f('fk_market_hour_entry_id_journal_entry')),
    sa.PrimaryKeyConstraint('ccy', 'hour', name=op.f('pk_market_hour'))
    )
    op.create_table('savings_position',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('amt', Amount(), nullable=False),
    sa.Column('loan', Amount(), nullable=False),
    sa.Column('earnings', Amount(), nullable=False),
    sa.Column('rate', Amount(), nullable=False),
    sa.Column('rate_seq', sa.BigInteger(), nullable=False),
    sa.Column('rate_set_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ccy'], ['market.ccy'], name=op.f('fk_savings_position_ccy_market')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_savings_position_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_savings_position')),
    sa.UniqueConstraint('user_id', 'ccy', name='uq_savings_position_user_ccy')
    )
    with op.batch_alter_table('savings_position', schema=None) as batch_op:
        batch_op.create_index('ix_savings_position_ccy', ['ccy'], unique=False)

    op.create_table('journal_leg',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('amount', Amount(), nullable=False),
    sa.Column('position_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_account.id'], name=op.f('fk_journal_leg_account_id_ledger_account')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entry.id'], name=op.f('fk_journal_leg_entry_id_journal_entry')),
    sa.ForeignKeyConstraint(['position_id'], ['savings_position.id'], name=op.f('fk_journal_leg_position_id_savings_position')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_leg'))
    )
    with op.batch_alter_table('journal_leg', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_leg_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_leg_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_leg_position_id'), ['position_id'], unique=False)

    op.create_table('rate_setting',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position_id', sa.BigInteger(), nullable=False),
    sa.Column('rate', Amount(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['position_id'], ['savings_position.id'], name=op.f('fk_rate_setting_position_id_savings_position')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_setting'))
    )

    _ledger_rules()

def downgrade() -> None:
    _drop_ledger_rules()
    op.drop_table('rate_setting')
    with op.batch_alter_table('journal_leg', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_leg_position_id'))
        batch_op.drop_index(batch_op.f('ix_journal_leg_entry_id'))
        batch_op.drop_index(batch_op.f('ix_journal_leg_account_id'))

    op.drop_table('journal_leg')
    with op.batch_alter_table('savings_position', schema=None) as batch_op:
        batch_op.drop_index('ix_savings_position_ccy')

    op.drop_table('savings_position')
    op.drop_table('market_hour')
    op.drop_table('market')
    with op.batch_alter_table('ledger_account', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_account_user')

    op.drop_table('ledger_account')
    op.drop_table('journal_entry')
    op.drop_table('user_account')
    with op.batch_alter_table('lending_history', schema=None) as batch_op:
        batch_op.drop_index('ix_lending_history_user_ts')

    op.drop_table('lending_history')
    op.drop_table('currency')
    op.drop_table('clock')


NON_NEGATIVE = {
    "ledger_account": ["balance"],
    "savings_position": ["amt", "loan", "earnings"],
}
APPEND_ONLY = ["journal_entry", "journal_leg"]


def _ledger_rules() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in NON_NEGATIVE.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                # SQLite stores amounts as canonical text: a negative one starts with "-".
                rule = f"{column} >= 0" if postgres else f"substr({column}, 1, 1) <> '-'"
                batch.create_check_constraint(f"{column}_not_negative", rule)
    if postgres:  # comparisons of amounts need a numeric type
        op.create_check_constraint("loan_within_amt", "savings_position", "loan <= amt")
        op.create_check_constraint("rate_range", "savings_position", "rate >= 0.01 AND rate <= 3.65")
    with op.batch_alter_table("journal_leg") as batch:
        batch.create_check_constraint("non_zero", "amount <> 0" if postgres else "amount <> '0'")
    if postgres:
        op.execute(
            """
            CREATE FUNCTION flexearn_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (SELECT sum(amount) FROM journal_leg WHERE entry_id = NEW.entry_id) <> 0 THEN
                    RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id;
                END IF;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            """
            CREATE CONSTRAINT TRIGGER journal_leg_balanced AFTER INSERT ON journal_leg
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION flexearn_entry_balanced()
            """
        )
        op.execute(
            """
            CREATE FUNCTION flexearn_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% rows are never updated or deleted', TG_TABLE_NAME;
            END $$
            """
        )
    for table in APPEND_ONLY:
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION flexearn_append_only()"
            )
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} rows are never updated or deleted'); END"
                )


def _drop_ledger_rules() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS journal_leg_balanced ON journal_leg")
        op.execute("DROP FUNCTION IF EXISTS flexearn_entry_balanced()")
        op.execute("DROP FUNCTION IF EXISTS flexearn_append_only()")
