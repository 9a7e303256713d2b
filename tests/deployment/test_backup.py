"""Backup and restore with the operator's commands: `pg_dump -Fc` of a live database, `pg_restore`
into a new one. The restore is at the schema's head, passes the ledger check, holds exactly what
the source held at the dump's snapshot, continues its sequences, serves and settles the next hour.

pg_dump reads the whole database in one REPEATABLE READ snapshot, so a dump taken while clients
trade is a consistent moment of the ledger, never a half-written transaction.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from flexearn.adapters import clock
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import alembic_config, current_revision, make_engine
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import FlexearnError
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, keys, savings, scheduler
from tests.conftest import REQUIRE_POSTGRES, postgres_database
from tests.contract.okx_http import OkxHttp
from tests.helpers import assert_ledger_ok, market_world
from tests.server import FLEXEARN, running_server

pytestmark = pytest.mark.postgres

PRODUCT = {
    "coin": "USDT",
    "periodType": "flexible",
    "apyType": "ladder",
    "apyList": [
        {"rateLevel": "0", "minStepVal": "0", "maxStepVal": "200", "currentApy": "6.00"},
        {"rateLevel": "1", "minStepVal": "200", "maxStepVal": "5000", "currentApy": "50.00"},
    ],
    "singleMinAmount": "1",
    "singleMaxAmount": "1000",
    "subscribePrecision": "6",
    "profitPrecision": "6",
}


@dataclass(frozen=True)
class Source:
    app: Flexearn
    url: str
    users: list[int]
    product_id: int
    master_key: str
    key: keys.NewKey  # the first user's


def libpq(url: str) -> str:
    """The URL as pg_dump and pg_restore take it (no SQLAlchemy driver name)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_tool(name: str, engine: sa.Engine) -> str:
    """The server's own major version of `name` (pg_dump cannot read a newer server than itself)."""
    with engine.connect() as conn:
        major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10_000
    for candidate in (f"/usr/lib/postgresql/{major}/bin/{name}", shutil.which(name)):
        if candidate and Path(candidate).exists():
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=True)
            found = re.search(r"(\d+)\.\d+", version.stdout)
            if found and int(found.group(1)) >= major:
                return candidate
    reason = f"no {name} for PostgreSQL {major} on this machine"
    if REQUIRE_POSTGRES:
        pytest.fail(reason)
    pytest.skip(reason)


def settle(app: Flexearn, hours: int) -> scheduler.Settled:
    """Advance the simulated clock and settle what fell due, as the settling worker does."""
    with app.uow() as uow:
        clock.advance(uow.conn, hours * HOUR_MS)
        uow.commit()
    return scheduler.settle_all_due(app.engine)


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    """History: 6 users, savings positions and a catalog product, 50 settled hours, 2 settled days."""
    for url in postgres_database():
        app = Flexearn(url)
        market_world(app, "USDT", demand=D(150))
        product_id = catalog.create_product(app.uow(), product_spec.parse(PRODUCT)).id
        users = []
        for i in range(6):
            user_id = accounts.create_user(app.uow(), f"backup-{i}-{uuid.uuid4().hex[:6]}")
            accounts.deposit(app.uow(), user_id, "USDT", D(10_000))
            savings.purchase(app.uow(), user_id, "USDT", D(100 + 50 * i), D("0.01") * (i + 1))
            catalog_trading.subscribe(app.uow(), user_id, product_id, "flexible", D(20 + i))
            users.append(user_id)
        master = generate_master_key()
        key = keys.create_key(app.uow(), SecretBox(master), users[0], "read,trade")
        settled = settle(app, 50)
        assert (len(settled.hours), len(settled.days)) == (50, 2)
        try:
            yield Source(app, url, users, product_id, master, key)
        finally:
            app.close()


class Writer(threading.Thread):
    """Trades while the dump runs: deposits, purchases, redemptions, subscriptions, rate changes
    and, every 20 operations, the next hour settled. One thread, so commits follow id order."""

    def __init__(self, source: Source) -> None:
        super().__init__(daemon=True)
        self.source, self.rng = source, random.Random(6)
        self.done = 0  # operations committed
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.step()
                self.done += 1
        except BaseException as error:  # shown by stop()
            self.error = error

    def step(self) -> None:
        app, rng = self.source.app, self.rng
        user = rng.choice(self.source.users)
        amount = D(rng.randint(1, 500)) / 100
        operations: list[Any] = [
            lambda: accounts.deposit(app.uow(), user, "USDT", amount),
            lambda: savings.purchase(app.uow(), user, "USDT", amount),
            lambda: savings.redeem(app.uow(), user, "USDT", amount),
            lambda: savings.set_rate(app.uow(), user, "USDT", D(rng.randint(1, 20)) / 100),
            lambda: catalog_trading.subscribe(
                app.uow(), user, self.source.product_id, "flexible", amount + 1
            ),
        ]
        try:
            if self.done % 20 == 19:
                settle(app, 1)
            else:
                rng.choice(operations)()
        except FlexearnError:
            pass  # e.g. a redemption of more than is held: refused, nothing written

    def wait_for(self, operations: int) -> None:
        target = self.done + operations
        while self.done < target and self.is_alive():
            self.stopping.wait(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert self.error is None, repr(self.error)


@pytest.fixture
def writer(source: Source) -> Iterator[Writer]:
    thread = Writer(source)
    thread.start()
    thread.wait_for(10)
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def restored() -> Iterator[str]:
    """An empty database to restore into (dropped afterwards)."""
    yield from postgres_database()


def pg_dump(source: Source, path: Path, *options: str) -> None:
    """The operator's command: custom format (compressed; pg_restore can pick and reorder)."""
    tool = pg_tool("pg_dump", source.app.engine)
    subprocess.run(
        [tool, "--format=custom", f"--file={path}", *options, libpq(source.url)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def pg_restore(path: Path, url: str) -> None:
    engine = make_engine(url)
    tool = pg_tool("pg_restore", engine)
    engine.dispose()
    subprocess.run(
        [tool, "--exit-on-error", "--single-transaction", "--no-owner", f"--dbname={libpq(url)}", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def contents(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order: balances, journal, positions, hours, days…"""
    found = {}
    for table in t.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        found[table.name] = [tuple(row) for row in conn.execute(sa.select(table).order_by(*order))]
    return found


def entry_ids(engine: sa.Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.journal_entry.c.id)).scalars())


def test_a_dump_taken_during_trading_restores_a_consistent_ledger_at_head(
    source: Source, writer: Writer, restored: str, tmp_path: Path
) -> None:
    before = writer.done
    pg_dump(source, tmp_path / "flexearn.dump")
    during = writer.done - before
    writer.wait_for(20)  # one settlement at least: journal entries after the snapshot
    writer.stop()
    pg_restore(tmp_path / "flexearn.dump", restored)

    engine = make_engine(restored)
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert current_revision(engine) == head
        # One snapshot: the restored journal is exactly the source's up to some commit (one
        # writer commits in id order), not a mix of tables read at different moments.
        restored_ids, source_ids = entry_ids(engine), entry_ids(source.app.engine)
        assert restored_ids == {i for i in source_ids if i <= max(restored_ids)}
    finally:
        engine.dispose()
    app = Flexearn(restored)
    try:
        assert_ledger_ok(app)
    finally:
        app.close()
    # as the operator verifies a restore before serving it
    check = subprocess.run(
        [FLEXEARN, "ledger", "check", "--full", "--db", restored], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert during > 0, "the writer committed nothing while pg_dump ran"
    assert len(source_ids) > len(restored_ids), "no write came after the dump's snapshot"


def test_a_restore_holds_what_the_snapshot_held_then_serves_settles_and_continues_its_ids(
    source: Source, writer: Writer, restored: str, tmp_path: Path
) -> None:
    # The dump is taken in a snapshot this test exported and read: what it must restore, exactly,
    # although the writer keeps committing while the snapshot is held and the dump runs.
    engine = source.app.engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as conn, conn.begin():
        snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        expected = contents(conn)
        writer.wait_for(20)
        pg_dump(source, tmp_path / "flexearn.dump", f"--snapshot={snapshot}")
    writer.stop()
    assert entry_ids(source.app.engine) > {row[0] for row in expected[t.journal_entry.name]}
    pg_restore(tmp_path / "flexearn.dump", restored)

    app = Flexearn(restored)
    try:
        with app.engine.connect() as conn:
            assert contents(conn) == expected
        assert_ledger_ok(app)
        _serves(app, restored, source)
        _settles_the_next_hour(app, expected)
        _continues_its_sequences(app, source, expected)
        assert_ledger_ok(app)
    finally:
        app.close()


def _serves(app: Flexearn, url: str, source: Source) -> None:
    """The restore answers a key made before the dump (the master key is backed up separately)."""
    (position,) = savings.positions(app.uow(), source.users[0], "USDT")
    with running_server(url, source.master_key) as base:
        response = OkxHttp(base, source.key).get("/api/v5/finance/savings/balance?ccy=USDT")
    assert response.status_code == 200, response.text
    assert Decimal(response.json()["data"][0]["amt"]) == position.amt


def _settles_the_next_hour(app: Flexearn, expected: dict[str, list[tuple[Any, ...]]]) -> None:
    """The next hour, and any the snapshot caught between a clock step and its settlement, in order."""
    hours = sa.select(t.market_hour.c.hour).where(t.market_hour.c.ccy == "USDT")
    last_hour = max(row[1] for row in expected[t.market_hour.name] if row[0] == "USDT")
    settled = [h.hour for h in settle(app, 1).hours]
    assert settled == [last_hour + HOUR_MS * (n + 1) for n in range(len(settled))]
    assert settled
    with app.engine.connect() as conn:
        assert max(conn.execute(hours).scalars()) == settled[-1]


def _continues_its_sequences(
    app: Flexearn, source: Source, expected: dict[str, list[tuple[Any, ...]]]
) -> None:
    """New rows get fresh ids above the restored ones (pg_dump carries each sequence's value)."""
    entry = accounts.deposit(app.uow(), source.users[1], "USDT", D(1))
    user = accounts.create_user(app.uow(), "after-restore")
    assert entry > max(row[0] for row in expected[t.journal_entry.name])
    assert user > max(row[0] for row in expected[t.user.name])
