"""Indexes that skip the rows they never find; room on PostgreSQL's pages for in-place updates

Revision ID: 0018_lean_indexes
Revises: 0017_orders_by_product
Create Date: 2026-12-03

Settlement writes a journal leg for every position an hour and every holder a day, and an interest
order for every holding a day; every row written pays one insertion into each of its table's
indexes. Three of those indexes hold, for almost every row, an entry nothing reads:

- `journal_leg.position_id` and `journal_leg.holding_id`: NULL on every leg that is not a
  position's or a holding's (funding, interest expense, control accounts: most legs). Both become
  partial (`WHERE … IS NOT NULL`), which still serves every lookup by a position or holding, the
  foreign keys' own checks included (an equality implies IS NOT NULL on both databases).
- `ix_earn_order_arrival` (status, arrive_at): read only by the delivery of redemptions
  (`status = 'processing' AND arrive_at <= now`). It becomes partial, `WHERE status =
  'processing'`: an entry while a redemption waits, none for the millions of settled orders. The
  query uses `tables.PROCESSING` itself (literal SQL, so that PostgreSQL's generic plans of the
  prepared statement can use the index too).

PostgreSQL only: `savings_position`, `earn_holding` and `ledger_account` get `fillfactor` 80.
Settlement rewrites every position each hour and a holding's or a funding account's row each
day; with full pages each new row version goes to another page and into every index (a
non-HOT update). With room left on the page, PostgreSQL writes the new version beside the old and
no index at all (a HOT update). ALTER TABLE sets it for the pages written from now on; existing
pages fill as they are rewritten (or at once with VACUUM FULL, at the operator's choice).

Cost: building the three indexes again (one pass over journal_leg and one over earn_order); no table is
rebuilt and no row changes.
"""

import sqlalchemy as sa
from alembic import op

revision = '0018_lean_indexes'
down_revision = '0017_orders_by_product'
branch_labels = None
depends_on = None

PROCESSING = sa.text("status = 'processing'")
FILLED = ('savings_position', 'earn_holding', 'ledger_account')


def upgrade() -> None:
    for column in ('position_id', 'holding_id'):
        name = f'ix_journal_leg_{column}'
        op.drop_index(name, table_name='journal_leg')
        given = sa.text(f'{column} IS NOT NULL')
        op.create_index(name, 'journal_leg', [column], postgresql_where=given, sqlite_where=given)
    op.drop_index('ix_earn_order_arrival', table_name='earn_order')
    op.create_index(
        'ix_earn_order_arrival', 'earn_order', ['status', 'arrive_at'],
        postgresql_where=PROCESSING, sqlite_where=PROCESSING,
    )
    if op.get_bind().dialect.name == 'postgresql':
        for table in FILLED:
            op.execute(f'ALTER TABLE {table} SET (fillfactor = 80)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in FILLED:
            op.execute(f'ALTER TABLE {table} RESET (fillfactor)')
    op.drop_index('ix_earn_order_arrival', table_name='earn_order')
    op.create_index('ix_earn_order_arrival', 'earn_order', ['status', 'arrive_at'])
    for column in ('position_id', 'holding_id'):
        name = f'ix_journal_leg_{column}'
        op.drop_index(name, table_name='journal_leg')
        op.create_index(name, 'journal_leg', [column])
