"""The replay window keyed by time: a signature's key begins with when it was signed

Revision ID: 0019_replay_keys_by_time
Revises: 0018_lean_indexes
Create Date: 2026-12-04

`seen_signature.digest` was a signature's SHA-256 (64 hex digits): a random place in the key's index
for every claim, and for every row the prune deletes — on SQLite (a served process's sustained
signed reads), a prune of ten seconds of claims took 36–37 transactions of 1,000 rows and ~0.6 s of
the write lock, each rewriting most of the index's leaf pages. A key is now the signature's time in wall milliseconds (13 digits) followed by that
hash (`services/replays.digest`): the claims of one moment go to the index's end, and the prune
removes a run from its start. The column widens to 77 characters (PostgreSQL: a change of the
catalog only; SQLite copies the table, which holds at most a few minutes of signatures).

Rows written before keep their 64-digit keys and expire as before; a key of the new kind never
equals one of them, so a signature accepted by a process of the old version is not refused as a
replay by one of this version. Stop the API processes for the upgrade (as docs/operations.md
says), or keep the replay window in Redis, which keys by the signature itself and is unchanged.
"""

import sqlalchemy as sa
from alembic import op

revision = '0019_replay_keys_by_time'
down_revision = '0018_lean_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('seen_signature') as batch:
        batch.alter_column('digest', type_=sa.String(length=77), existing_type=sa.String(length=64))


def downgrade() -> None:
    # The keys of the new kind do not fit the old column: forgotten (the window restarts).
    op.execute('DELETE FROM seen_signature WHERE length(digest) > 64')
    with op.batch_alter_table('seen_signature') as batch:
        batch.alter_column('digest', type_=sa.String(length=64), existing_type=sa.String(length=77))
