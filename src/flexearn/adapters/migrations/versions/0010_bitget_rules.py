"""Bitget's rules: catalog days turn at 00:00 UTC+8 (16:00 UTC); redemptions a minute apart

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

Catalog days used to turn at 00:00 UTC. Bitget's turn at 00:00 UTC+8, eight hours earlier: every
stored day boundary that is still ahead of the engine moves to the start of the same date in UTC+8
(8 hours earlier) — open holdings' `interest_time` and `expire_time`, and the first day of a product
that has settled none. Settled days (`earn_product_day`) are history and stay as they are: the day
after one that ended at 00:00 UTC ends at the next 16:00 UTC, so each date is paid exactly once
(the first day after the upgrade is 16 hours long). Holdings whose interest had started keep
earning every day; holdings waiting for theirs start 8 hours sooner.

`user_account.last_redeem_at`: the wall-clock time of the user's last accepted catalog
redemption; Bitget refuses one within a minute of the last.
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

DAY_MS = 86_400_000
SHIFT_MS = 8 * 3_600_000  # 00:00 UTC → 00:00 UTC+8 of the same date

holding = sa.table(
    'earn_holding',
    sa.column('open', sa.Boolean),
    sa.column('interest_time', sa.BigInteger),
    sa.column('expire_time', sa.BigInteger),
)
product = sa.table('earn_product', sa.column('id', sa.BigInteger), sa.column('first_day', sa.BigInteger))
product_day = sa.table('earn_product_day', sa.column('product_id', sa.BigInteger))


def _shift(by: int, on_grid: int) -> None:
    """Move the boundaries still ahead that lie `on_grid` ms after 00:00 UTC by `by` ms."""
    for column in (holding.c.interest_time, holding.c.expire_time):
        op.execute(
            sa.update(holding)
            .where(holding.c.open.is_(True), column.is_not(None), column % DAY_MS == on_grid)
            .values({column.name: column + by})
        )
    settled = sa.select(product_day.c.product_id).where(product_day.c.product_id == product.c.id)
    op.execute(
        sa.update(product)
        .where(product.c.first_day % DAY_MS == on_grid, ~settled.exists())
        .values(first_day=product.c.first_day + by)
    )


def upgrade() -> None:
    op.add_column('user_account', sa.Column('last_redeem_at', sa.BigInteger(), nullable=True))
    _shift(-SHIFT_MS, 0)


def downgrade() -> None:
    _shift(SHIFT_MS, DAY_MS - SHIFT_MS)
    op.drop_column('user_account', 'last_redeem_at')  # SQLite 3.35+ drops it in place, as 0003 does
