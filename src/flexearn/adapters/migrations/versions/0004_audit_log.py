"""operator surface: admin audit log, external demand posts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The audit log of admin actions; the borrow demand an operator's margin engine posts per
(currency, hour); and `external` as a third demand source of a market.
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OLD_SOURCES = "demand_source IN ('static', 'simulated')"
NEW_SOURCES = "demand_source IN ('static', 'simulated', 'external')"


def upgrade() -> None:
    op.create_table('demand_post',
    sa.Column('ccy', sa.String(length=16), nullable=False),
    sa.Column('hour', sa.BigInteger(), nullable=False),
    sa.Column('demand', Amount(), nullable=False),
    sa.Column('borrow_rate', Amount(), nullable=False),
    sa.Column('posted_at', sa.BigInteger(), nullable=False),
    sa.Column('posted_by', sa.String(length=128), nullable=False),
    sa.CheckConstraint('hour = (hour / 3600000) * 3600000', name=op.f('ck_demand_post_on_the_hour')),
    sa.ForeignKeyConstraint(['ccy'], ['market.ccy'], name=op.f('fk_demand_post_ccy_market')),
    sa.PrimaryKeyConstraint('ccy', 'hour', name=op.f('pk_demand_post'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    _market_sources(OLD_SOURCES, NEW_SOURCES)


def downgrade() -> None:
    op.execute("UPDATE market SET demand_source = 'static' WHERE demand_source = 'external'")
    _market_sources(NEW_SOURCES, OLD_SOURCES)
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('demand_post')


def _market_sources(old: str, new: str) -> None:
    """Replace the CHECK on market.demand_source.

    PostgreSQL alters the constraint. SQLite cannot; a batch copy of `market` would have to drop
    the table that positions and settled hours reference (refused with foreign keys on), so the
    constraint's text is edited in the schema instead — the procedure SQLite documents for
    changing CHECK constraints (lang_altertable.html, "otheralter"). The rows already satisfy
    the new constraint (upgrade widens it; downgrade first moves `external` markets to `static`).
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_market_demand_source'), 'market', type_='check')
        op.create_check_constraint(op.f('ck_market_demand_source'), 'market', new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'market'",
        (old, new),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    changed = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'market'").scalar_one()
    if new not in changed:
        raise RuntimeError("the CHECK constraint on market.demand_source was not found")
