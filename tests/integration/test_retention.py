"""History retention: old lending and rate history dropped behind a ledger checkpoint, the month kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import make_engine, migrate
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.catalog import DAY_MS
from flexearn.domain.money import D
from flexearn.services import keys, ledger_check, retention
from flexearn.services.retention import PruneRefused, Retention
from tests.contract.okx_http import signed_headers
from tests.helpers import T0, advance, lender, market_world, with_todays_tables

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
HISTORY = "/api/v5/finance/savings/lending-history"
HOURS = 30  # settled: T0 + 1h .. T0 + 30h, lending history at T0 + 1h .. T0 + 29h
# Business time of the prune: a month and two hours after T0 + 1 day (the first day's end).
NOW = T0 + DAY_MS + 30 * DAY_MS + 2 * HOUR_MS
HORIZON = NOW - 30 * DAY_MS  # T0 + 26h


@pytest.fixture
def lent(app: Flexearn) -> Flexearn:
    """USDT, demand 150: A 100 @ 2 %, B 100 @ 5 %; 30 hours settled, interest paid every hour."""
    market_world(app, demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    lender(app, "B", "USDT", D(100), D("0.05"))
    advance(app, HOURS)
    return app


def history_hours(app: Flexearn) -> list[int]:
    h = t.lending_history
    with app.engine.connect() as conn:
        return list(conn.execute(sa.select(h.c.ts).distinct().order_by(h.c.ts)).scalars())


def okx_history(app: Flexearn, user_id: int) -> list[dict[str, Any]]:
    """The OKX lending-history endpoint, signed and served in process."""
    from starlette.testclient import TestClient  # imported here: it warns on import, filtered above

    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), user_id, "read", "", None)
    client = TestClient(create_app(Settings(master_key=master, admin_token="t" * 32), app))
    target = f"{HISTORY}?limit=100"
    body = client.get(target, headers=signed_headers(key, "GET", target)).json()
    assert body["code"] == "0", body
    records: list[dict[str, Any]] = body["data"]
    return records


def test_pruning_without_a_checkpoint_covering_the_history_is_refused(lent: Flexearn) -> None:
    before = history_hours(lent)
    with pytest.raises(PruneRefused, match="no ledger checkpoint"):
        retention.prune(lent.engine, Retention(), NOW)
    ledger_check.run(lent.engine, checkpoint=True)
    advance(lent, 1)  # a new hour the checkpoint does not hold, and a horizon past it
    with pytest.raises(PruneRefused, match="does not hold the history of USDT"):
        retention.prune(lent.engine, Retention(), NOW + 30 * DAY_MS)
    assert history_hours(lent) == [*before, before[-1] + HOUR_MS]


def test_old_history_is_dropped_the_promised_month_kept_and_the_ledger_still_checks(lent: Flexearn) -> None:
    kept = [ts for ts in history_hours(lent) if ts >= HORIZON]
    served = okx_history(lent, user_id=1)
    assert ledger_check.run(lent.engine, checkpoint=True).violations == []

    pruned = retention.prune(lent.engine, Retention(lending_history_days=30, rate_history_days=30), NOW)

    assert (pruned.lending_before, pruned.rate_before) == (HORIZON, HORIZON)
    hours = history_hours(lent)
    if lent.engine.dialect.name == "postgresql":  # whole days: the first day went, the second stays
        assert pruned.partitions_dropped == ["lending_history_d20260101"]
        assert hours == [ts for ts in range(T0 + HOUR_MS, T0 + HOURS * HOUR_MS, HOUR_MS) if ts >= T0 + DAY_MS]
    else:
        assert hours == kept
        assert pruned.lending_rows == 2 * (HORIZON - T0 - HOUR_MS) // HOUR_MS  # two positions an hour
    assert set(kept) <= set(hours)  # everything of the last month is still there
    with lent.engine.connect() as conn:
        rate_hours = list(
            conn.execute(sa.select(t.market_hour.c.hour).order_by(t.market_hour.c.hour)).scalars()
        )
    assert rate_hours == list(range(HORIZON, T0 + (HOURS + 1) * HOUR_MS, HOUR_MS))
    # The API answers from what is left: at the business time of the tests (T0 + 30h) the month
    # it promises reaches back before T0, and it serves the same records, less the pruned ones.
    assert okx_history(lent, user_id=1) == [r for r in served if int(r["ts"]) in hours]

    incremental, full = ledger_check.run(lent.engine), ledger_check.run(lent.engine, full=True)
    assert (incremental.violations, full.violations) == ([], [])
    assert full.journal_base is None  # the whole journal; the pruned interest from the checkpoint
    assert full.history_base == pruned.checkpoint
    advance(lent, 3)
    assert ledger_check.run(lent.engine, checkpoint=True).violations == []
    assert ledger_check.run(lent.engine, checkpoint=True).violations == []  # supersedes the first
    assert ledger_check.run(lent.engine, full=True).violations == []  # its base was kept
    retention.prune(lent.engine, Retention(lending_history_days=60, rate_history_days=60), NOW)
    assert ledger_check.run(lent.engine, full=True).violations == []  # a longer retention brings nothing back


def test_rate_history_is_kept_forever_by_default(lent: Flexearn) -> None:
    ledger_check.run(lent.engine, checkpoint=True)
    pruned = retention.prune(lent.engine, Retention.from_settings(Settings.from_env({})), NOW)
    assert (pruned.lending_before, pruned.rate_before) == (HORIZON, None)
    with lent.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.market_hour)).scalar_one() == HOURS
    with pytest.raises(ValueError, match="at least 30 days"):
        Retention.from_settings(Settings.from_env({"FLEXEARN_LENDING_HISTORY_DAYS": "7"}))
    forever = Retention.from_settings(Settings.from_env({"FLEXEARN_LENDING_HISTORY_DAYS": "0"}))
    assert retention.prune(lent.engine, forever, NOW) == retention.Pruned(None, None, None)


@pytest.mark.postgres
def test_history_lives_in_day_partitions_and_stray_rows_move_out_of_the_default(postgres_url: str) -> None:
    app = Flexearn(postgres_url)
    try:
        market_world(app, demand=D(150))
        lender(app, "A", "USDT", D(100), D("0.02"))
        advance(app, 3)  # no partition made yet: the rows went to the default partition
        with app.engine.connect() as conn:
            assert retention.partitions(conn) == {}
            assert conn.exec_driver_sql("SELECT count(*) FROM lending_history_default").scalar_one() == 2
        made = retention.ensure_partitions(app.engine, T0 + 3 * HOUR_MS, ahead_days=2)
        assert made == [
            "lending_history_d20251231",
            "lending_history_d20260101",
            "lending_history_d20260102",
            "lending_history_d20260103",
        ]
        with app.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM lending_history_default").scalar_one() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM lending_history_d20260101").scalar_one() == 2
            partitioned = conn.exec_driver_sql(
                "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'lending_history'::regclass"
            ).scalar_one()
        assert partitioned == "r"  # by range (of ts)
        assert retention.ensure_partitions(app.engine, T0 + 3 * HOUR_MS, ahead_days=2) == []
        advance(app, 1)  # settles into its partition
        with app.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM lending_history_d20260101").scalar_one() == 3
        assert ledger_check.check(app.uow(), full=True) == []
    finally:
        app.close()


@pytest.fixture
def engine_at_0005(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    migrate(engine, "0005")
    yield engine
    engine.dispose()


def test_migration_0006_keeps_the_history_of_a_populated_database(engine_at_0005: sa.Engine) -> None:
    url = engine_at_0005.url.render_as_string(hide_password=False)
    old = Flexearn(url, migrate_schema=False)
    try:
        with with_todays_tables(old.engine):
            market_world(old, demand=D(150))
            lender(old, "A", "USDT", D(100), D("0.02"))
            advance(old, 26)  # history on two days
        rows = history_rows(old.engine)
    finally:
        old.close()
    app = Flexearn(url)  # migrates to the head
    try:
        assert history_rows(app.engine) == rows
        assert ledger_check.check(app.uow()) == []
        advance(app, 1)  # the id sequence goes on
        assert len(history_rows(app.engine)) == len(rows) + 1
        assert ledger_check.check(app.uow(), checkpoint=True) == []
        if app.engine.dialect.name == "postgresql":
            with app.engine.connect() as conn:
                assert sorted(retention.partitions(conn).values()) == [
                    "lending_history_d20260101",
                    "lending_history_d20260102",
                ]
        migrate(app.engine, "0005")  # and back
        assert history_rows(app.engine)[: len(rows)] == rows
    finally:
        app.close()


def history_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    h = t.lending_history
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(h).order_by(h.c.id))]


def test_the_workers_job_checks_writes_a_checkpoint_and_prunes_behind_it(lent: Flexearn) -> None:
    job = retention.after_settlement(Retention())
    first = job(lent.engine)
    assert (first.check.violations, first.check.checkpoint) == ([], 1)
    assert first.pruned is not None
    assert first.pruned.checkpoint == 1
    assert first.pruned.lending_before == T0 + 1 + HOURS * HOUR_MS - 30 * DAY_MS  # business now, less 30 days
    advance(lent, 1)
    assert job(lent.engine).check.journal_base == 1  # incremental from the last one
    with lent.engine.begin() as conn:
        conn.execute(sa.update(t.position).where(t.position.c.id == 1).values(amt=D(1000)))
    red = job(lent.engine)
    assert red.pruned is None
    assert red.check.checkpoint is None
    assert any("position 1: amt 1000 but" in v for v in red.check.violations)


def test_the_cli_checks_with_a_checkpoint_and_prunes_behind_it(lent: Flexearn) -> None:
    """`flexearn ledger check --checkpoint|--full` and `flexearn history prune`, as subprocesses."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    command = shutil.which("flexearn", path=str(Path(sys.executable).parent)) or "flexearn"
    url = lent.engine.url.render_as_string(hide_password=False)

    def flexearn(*args: str) -> tuple[int, Any]:
        env = {**os.environ, "FLEXEARN_RATE_HISTORY_DAYS": "1"}
        done = subprocess.run(
            [command, *args, "--db", url, "--json"], capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode < 2 or not done.stdout, done.stdout  # 2: refused by click, on stderr
        return done.returncode, json.loads(done.stdout) if done.returncode < 2 else done.stderr

    code, refused = flexearn("history", "prune")
    assert (code, refused["error"]) == (1, "refused")
    assert "no ledger checkpoint" in refused["message"]
    code, checked = flexearn("ledger", "check", "--checkpoint")
    assert (code, checked["ok"], checked["base"], checked["checkpoint"]) == (0, True, None, 1)
    code, pruned = flexearn("history", "prune")
    assert (code, pruned["checkpoint"]) == (0, 1)
    assert pruned["rate_before"] == T0 + 1 + HOURS * HOUR_MS - DAY_MS  # a day before business now
    assert pruned["rate_rows"] == 6  # T0 + 1h .. T0 + 6h
    code, full = flexearn("ledger", "check", "--full")
    assert (code, full["ok"], full["base"]) == (0, True, None)
    code, error = flexearn("history", "prune", "--lending-days", "7")  # below the promised month
    assert code == 2
    assert "at least 30 days" in error
