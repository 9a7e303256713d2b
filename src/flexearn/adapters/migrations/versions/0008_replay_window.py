"""replay window: signatures seen, shared by API processes through the database

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

Without Redis, every API process refuses a signature any of them accepted through this table.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seen_signature',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_seen_signature'))
    )
    op.create_index('ix_seen_signature_expires_at', 'seen_signature', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_seen_signature_expires_at', table_name='seen_signature')
    op.drop_table('seen_signature')
