"""history partitions: lending history partitioned by day (PostgreSQL), ledger checkpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

On PostgreSQL `lending_history` becomes a table partitioned by range of `ts`, one partition per
UTC day (`lending_history_dYYYYMMDD`) and a DEFAULT one, so that retention drops whole days: the
rows are copied into the new table and the names swapped; its primary key becomes (id, ts), as a
partitioned table's key must hold the partition key; the id sequence carries on. SQLite keeps
one table. Both get an index on `ts` (what the ledger check reads after its checkpoint, what
retention deletes), the ledger checkpoints and the history horizons.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

DAY_MS = 86_400_000
COLUMNS = "id, user_id, position_id, ccy, ts, amt, earnings, rate"


def _partition(day: int) -> str:
    """The name `services.retention` gives the partition of the UTC day starting at `day` (ms)."""
    return "lending_history_d" + datetime.fromtimestamp(day / 1000, UTC).strftime("%Y%m%d")


def upgrade() -> None:
    op.create_table('ledger_checkpoint',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=False),
    sa.Column('gaps', sa.Text(), nullable=False),
    sa.Column('hours', sa.Text(), nullable=False),
    sa.Column('positions', sa.BigInteger(), nullable=False),
    sa.Column('accounts', sa.BigInteger(), nullable=False),
    sa.Column('business_at', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('dropped_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_checkpoint'))
    )
    op.create_table('history_horizon',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('before', sa.BigInteger(), nullable=False),
    sa.Column('checkpoint_id', sa.BigInteger(), nullable=False),
    sa.Column('pruned_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['ledger_checkpoint.id'],
                            name=op.f('fk_history_horizon_checkpoint_id_ledger_checkpoint')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_history_horizon'))
    )
    if op.get_bind().dialect.name != "postgresql":
        op.create_index('ix_lending_history_ts', 'lending_history', ['ts'], unique=False)
        return
    conn = op.get_bind()
    op.execute("ALTER TABLE lending_history RENAME TO lending_history_0005")
    op.execute("ALTER INDEX pk_lending_history RENAME TO pk_lending_history_0005")
    op.execute("ALTER INDEX ix_lending_history_user_ts RENAME TO ix_lending_history_user_ts_0005")
    op.execute(
        """
        CREATE TABLE lending_history (
            id BIGINT NOT NULL DEFAULT nextval('lending_history_id_seq'),
            user_id BIGINT NOT NULL,
            position_id BIGINT NOT NULL,
            ccy VARCHAR(16) NOT NULL,
            ts BIGINT NOT NULL,
            amt NUMERIC NOT NULL,
            earnings NUMERIC NOT NULL,
            rate NUMERIC NOT NULL
        ) PARTITION BY RANGE (ts)
        """
    )
    op.execute("CREATE TABLE lending_history_default PARTITION OF lending_history DEFAULT")
    days = conn.exec_driver_sql(
        "SELECT DISTINCT ts / 86400000 * 86400000 FROM lending_history_0005 WHERE ts >= 0 ORDER BY 1"
    ).scalars()
    for day in days:
        op.execute(
            f"CREATE TABLE {_partition(day)} PARTITION OF lending_history "
            f"FOR VALUES FROM ({day}) TO ({day + DAY_MS})"
        )
    op.execute(f"INSERT INTO lending_history ({COLUMNS}) SELECT {COLUMNS} FROM lending_history_0005")
    # The keys and indexes after the copy: one build per partition instead of row by row.
    op.execute("ALTER TABLE lending_history ADD CONSTRAINT pk_lending_history PRIMARY KEY (id, ts)")
    op.execute("CREATE INDEX ix_lending_history_user_ts ON lending_history (user_id, ts)")
    op.execute("CREATE INDEX ix_lending_history_ts ON lending_history (ts)")
    op.execute("ALTER SEQUENCE lending_history_id_seq OWNED BY lending_history.id")
    op.execute("DROP TABLE lending_history_0005")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE lending_history RENAME TO lending_history_0006")
        op.execute("ALTER INDEX pk_lending_history RENAME TO pk_lending_history_0006")
        op.execute("ALTER INDEX ix_lending_history_user_ts RENAME TO ix_lending_history_user_ts_0006")
        op.execute("ALTER INDEX ix_lending_history_ts RENAME TO ix_lending_history_ts_0006")
        op.execute(
            """
            CREATE TABLE lending_history (
                id BIGINT NOT NULL DEFAULT nextval('lending_history_id_seq'),
                user_id BIGINT NOT NULL,
                position_id BIGINT NOT NULL,
                ccy VARCHAR(16) NOT NULL,
                ts BIGINT NOT NULL,
                amt NUMERIC NOT NULL,
                earnings NUMERIC NOT NULL,
                rate NUMERIC NOT NULL,
                CONSTRAINT pk_lending_history PRIMARY KEY (id)
            )
            """
        )
        op.execute(f"INSERT INTO lending_history ({COLUMNS}) SELECT {COLUMNS} FROM lending_history_0006")
        op.execute("CREATE INDEX ix_lending_history_user_ts ON lending_history (user_id, ts)")
        op.execute("ALTER SEQUENCE lending_history_id_seq OWNED BY lending_history.id")
        op.execute("DROP TABLE lending_history_0006")  # its partitions with it
    else:
        op.drop_index('ix_lending_history_ts', table_name='lending_history')
    tables = op.get_bind().exec_driver_sql(
        "SELECT id FROM ledger_checkpoint WHERE dropped_at IS NULL"
    ).scalars()
    for checkpoint_id in list(tables):
        op.execute(f"DROP TABLE IF EXISTS ledger_checkpoint_positions_{checkpoint_id}")
        op.execute(f"DROP TABLE IF EXISTS ledger_checkpoint_accounts_{checkpoint_id}")
    op.drop_table('history_horizon')
    op.drop_table('ledger_checkpoint')
