"""SQLite: the lending history's per-user index led by the currency

Revision ID: 0016_history_by_currency
Revises: 0015_key_revocations
Create Date: 2026-12-02

`ix_lending_history_user_ts` (user_id, ts) becomes `ix_lending_history_ccy_user_ts` (ccy, user_id,
ts) on SQLite. Settlement writes a currency's hour of history in its own transaction; in an index
led by the user those rows fall on every page of it, so each currency's commit wrote the whole
index to the WAL again (ten times an hour with ten currencies). Led by the currency, a currency's
rows touch its own pages only. The readers of a user's records name the user's currencies.

Cost: one pass over the history to build the new index (no table is rebuilt; ids and foreign keys
are untouched), then the old index is dropped. PostgreSQL is unchanged: its history is partitioned
by day and keeps (user_id, ts).
"""

from alembic import op

revision = '0016_history_by_currency'
down_revision = '0015_key_revocations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index('ix_lending_history_ccy_user_ts', 'lending_history', ['ccy', 'user_id', 'ts'])
    op.drop_index('ix_lending_history_user_ts', table_name='lending_history')


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index('ix_lending_history_user_ts', 'lending_history', ['user_id', 'ts'])
    op.drop_index('ix_lending_history_ccy_user_ts', table_name='lending_history')
