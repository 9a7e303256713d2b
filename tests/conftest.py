"""Databases for the tests: a fresh SQLite file, and a fresh PostgreSQL database when one is reachable.

PostgreSQL comes from FLEXEARN_TEST_POSTGRES_URL (default: the local server as `postgres`); each
test gets its own database, created and dropped here. Without a server the PostgreSQL tests skip
and say why, unless FLEXEARN_REQUIRE_POSTGRES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flexearn.adapters.db import make_engine, normalise_url
from flexearn.bootstrap import Flexearn

POSTGRES_ADMIN_URL = os.environ.get(
    "FLEXEARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("FLEXEARN_REQUIRE_POSTGRES") == "1"


@functools.cache
def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per run."""
    try:
        engine = make_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure to reach the server means: skip
        return (
            f"no PostgreSQL at {POSTGRES_ADMIN_URL} ({type(error).__name__}); set FLEXEARN_TEST_POSTGRES_URL"
        )
    return None


def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    reason = _postgres_unavailable()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"flexearn_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = (
        sa.make_url(normalise_url(POSTGRES_ADMIN_URL))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'flexearn.db'}"
    else:
        yield from postgres_database()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Each integration test runs once on SQLite and once on PostgreSQL."""
    yield from _database(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per test module and backend, for tests that share a running server."""
    yield from _database(request.param, tmp_path_factory)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.fixture
def app(database_url: str) -> Iterator[Flexearn]:
    instance = Flexearn(database_url)
    yield instance
    instance.close()
