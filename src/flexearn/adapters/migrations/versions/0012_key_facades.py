"""API keys say which façades they work on

Revision ID: 0012_key_facades
Revises: 0011_settle
Create Date: 2026-12-02

Binance signs with the secret alone; OKX and Bitget also ask for the key's passphrase. A key that
works on every façade is therefore only as strong as its secret: whoever holds the secret without
the passphrase can use it on the Binance façade. `api_key.facades` names the façades a key works
on (comma-separated, of okx, bitget, binance), so that an operator can keep a key's passphrase
meaningful. Keys made before this worked on every façade and still do.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_key_facades'
down_revision = '0011_settle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_key') as batch:
        batch.add_column(
            sa.Column('facades', sa.String(64), nullable=False, server_default='binance,bitget,okx')
        )


def downgrade() -> None:
    with op.batch_alter_table('api_key') as batch:
        batch.drop_column('facades')
