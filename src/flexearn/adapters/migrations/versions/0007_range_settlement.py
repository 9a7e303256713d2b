"""range settlement: periods settled by user-id range

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

`settlement_open` (a period being settled in ranges, with its plan) and `settlement_range` (its
ranges of user ids, each applied exactly once). Both hold open periods only. The indexes by which
settlement reads a currency's positions and a product's open holdings gain `user_id`, so that a
range reads its own users' rows only.
"""

import sqlalchemy as sa
from alembic import op

from flexearn.adapters.tables import Amount

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_open",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('hour', 'day')", name=op.f("ck_settlement_open_kind")),
        sa.PrimaryKeyConstraint("kind", "key", "period", name=op.f("pk_settlement_open")),
    )
    op.create_table(
        "settlement_range",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("range_no", sa.Integer(), nullable=False),
        sa.Column("lo", sa.BigInteger(), nullable=True),
        sa.Column("hi", sa.BigInteger(), nullable=True),
        sa.Column("applied_at", sa.BigInteger(), nullable=True),
        sa.Column("applied_by", sa.String(length=128), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("interest", Amount(), nullable=False),
        sa.Column("lent", Amount(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["kind", "key", "period"],
            ["settlement_open.kind", "settlement_open.key", "settlement_open.period"],
            name=op.f("fk_settlement_range_kind_settlement_open"),
        ),
        sa.PrimaryKeyConstraint("kind", "key", "period", "range_no", name=op.f("pk_settlement_range")),
    )

    op.create_index("ix_savings_position_ccy_user", "savings_position", ["ccy", "user_id"], unique=False)
    op.drop_index("ix_savings_position_ccy", table_name="savings_position")
    op.create_index(
        "ix_earn_holding_product_user", "earn_holding", ["product_id", "open", "user_id"], unique=False
    )
    op.drop_index("ix_earn_holding_product", table_name="earn_holding")


def downgrade() -> None:
    op.create_index("ix_earn_holding_product", "earn_holding", ["product_id", "open"], unique=False)
    op.drop_index("ix_earn_holding_product_user", table_name="earn_holding")
    op.create_index("ix_savings_position_ccy", "savings_position", ["ccy"], unique=False)
    op.drop_index("ix_savings_position_ccy_user", table_name="savings_position")
    op.drop_table("settlement_range")
    op.drop_table("settlement_open")
