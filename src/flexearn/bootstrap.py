"""Wires settings to an engine; nothing happens at import time."""

from __future__ import annotations

import sqlalchemy as sa

from flexearn.adapters.db import make_engine, migrate
from flexearn.services.figures import FigureCache
from flexearn.services.unit_of_work import UnitOfWork


class Flexearn:
    """One running instance: an engine, units of work on it, and the figures its public reads
    keep in memory between changes (`services.figures`)."""

    def __init__(self, database_url: str, *, migrate_schema: bool = True) -> None:
        self.engine: sa.Engine = make_engine(database_url)
        self.figures = FigureCache()
        if migrate_schema:
            migrate(self.engine)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    def read_uow(self) -> UnitOfWork:
        """A unit of work for a use case that only reads (see `UnitOfWork`)."""
        return UnitOfWork(self.engine, read_only=True)

    def close(self) -> None:
        self.engine.dispose()
