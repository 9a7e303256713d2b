"""Alembic environment: runs migrations on the engine that `flexearn.adapters.db` passes in."""

from alembic import context

from flexearn.adapters.tables import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
