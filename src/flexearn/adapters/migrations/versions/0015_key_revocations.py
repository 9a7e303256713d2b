"""An index for the revocation check of the processes that keep API keys in memory

Revision ID: 0015_key_revocations
Revises: 0014_realtime_apr
Create Date: 2026-12-02

`ix_api_key_revoked`: the keys revoked since a time (`keys.revoked_since`, asked once a second by
every API process) read through an index instead of a scan of every key. Partial: only revoked
keys are in it, so it stays as small as revocations are rare, and creating or using a key never
maintains it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0015_key_revocations'
down_revision = '0014_realtime_apr'
branch_labels = None
depends_on = None


def upgrade() -> None:
    revoked = sa.text("revoked_at IS NOT NULL")
    op.create_index(
        'ix_api_key_revoked', 'api_key', ['revoked_at'], sqlite_where=revoked, postgresql_where=revoked
    )


def downgrade() -> None:
    op.drop_index('ix_api_key_revoked', table_name='api_key')
