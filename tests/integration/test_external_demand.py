"""Demand posted by an operator's margin engine, hour by hour (the `external` demand source)."""

from __future__ import annotations

import json
import subprocess

import pytest
import sqlalchemy as sa
from alembic import command

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.db import alembic_config, make_engine, migrate
from flexearn.bootstrap import Flexearn
from flexearn.domain.errors import Conflict, InvalidParameter
from flexearn.domain.money import D
from flexearn.services import accounts, market_data, markets
from tests.helpers import T0, advance, assert_ledger_ok, lender, market_world, with_todays_tables
from tests.integration.test_cli import FLEXEARN

FIRST = T0 + HOUR_MS


def test_a_pro_rata_market_lends_what_was_posted_at_the_posted_rate(app: Flexearn) -> None:
    market_world(app, "USDC", precision=6, mode="pro_rata")
    markets.set_market(app.uow(), "USDC", demand_source="external")
    lender(app, "a", "USDC", D(300), D("0.02"))
    lender(app, "b", "USDC", D(100), D("0.10"))  # above the posted rate: not eligible
    markets.post_demand(app.uow(), "USDC", FIRST, D(150), D("0.06"), posted_by="margin-engine")

    estimate = market_data.rate_summary(app.uow(), "USDC")[0].est_rate
    assert estimate == D("0.06")  # the next match, with the posted rate
    (hour,) = advance(app, 1)
    assert (hour.demand, hour.borrow_rate, hour.lent) == (D(150), D("0.06"), D(150))
    (quiet,) = advance(app, 1)  # nothing posted for the next hour: nothing lent
    assert (quiet.demand, quiet.lent, quiet.borrow_rate) == (D(0), D(0), D(0))
    assert quiet.interest_paid > 0  # the hour before was paid for
    assert_ledger_ok(app)


def test_a_post_replaces_an_earlier_one_until_its_hour_is_settled(app: Flexearn) -> None:
    market_world(app, "USDT", precision=8)
    markets.set_market(app.uow(), "USDT", demand_source="external")
    lender(app, "a", "USDT", D(100), D("0.02"))
    markets.post_demand(app.uow(), "USDT", FIRST, D(80))
    markets.post_demand(app.uow(), "USDT", FIRST, D(40), posted_by="correction")
    (hour,) = advance(app, 1)
    assert hour.lent == D(40)
    with pytest.raises(Conflict) as settled:
        markets.post_demand(app.uow(), "USDT", FIRST, D(1))
    assert settled.value.param == "hour"
    with pytest.raises(Conflict):
        markets.post_demand(app.uow(), "USDT", FIRST - HOUR_MS, D(1))  # before the first hour
    posts = markets.demand_posts(app.uow(), "USDT")
    assert [(p.hour, p.demand, p.posted_by) for p in posts] == [(FIRST, D(40), "correction")]


def test_posts_are_refused_for_other_sources_and_malformed_hours(app: Flexearn) -> None:
    market_world(app, "USDT", precision=2)
    with pytest.raises(Conflict):
        markets.post_demand(app.uow(), "USDT", FIRST, D(1))  # static demand
    markets.set_market(app.uow(), "USDT", demand_source="external")
    for hour, amount, rate, param in (
        (FIRST + 1, D(1), D(0), "hour"),
        (FIRST, D(-1), D(0), "demand"),
        (FIRST, D("0.001"), D(0), "demand"),  # more decimals than USDT has here
        (FIRST, D(1), D(11), "borrow_rate"),
    ):
        with pytest.raises(InvalidParameter) as refused:
            markets.post_demand(app.uow(), "USDT", hour, amount, rate)
        assert refused.value.param == param
    assert markets.demand_posts(app.uow(), "USDT") == []


def test_the_cli_posts_demand_through_the_same_service(database_url: str) -> None:
    app = Flexearn(database_url)
    market_world(app, "USDT", precision=8)
    app.close()
    proc = subprocess.run(
        [FLEXEARN, "market", "set", "USDT", "--demand-source", "external", "--db", database_url],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [FLEXEARN, "market", "post-demand", "USDT", "2026-01-01T01:00:00", "75", "--db", database_url,
         "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) | {"posted_at": 0} == {
        "ccy": "USDT", "hour": FIRST, "demand": "75", "borrow_rate": "0", "posted_at": 0, "posted_by": "cli"
    }


def test_upgrading_a_database_with_markets_keeps_them_and_admits_the_external_source(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    migrate(engine, "0003")
    app = Flexearn(database_url, migrate_schema=False)
    with with_todays_tables(engine):
        accounts.add_currency(app.uow(), "USDT", 8)
        markets.set_market(app.uow(), "USDT", demand=D(5))
        lender(app, "a", "USDT", D(10))
    migrate(engine)  # 0004: on SQLite, the market table is referenced by positions
    markets.set_market(app.uow(), "USDT", demand_source="external")
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.market.c.demand_source)).scalar_one() == "external"
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.update(t.market).values(demand_source="oracle"))
    command.downgrade(alembic_config(engine), "0003")  # external markets go back to static
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.market.c.demand_source)).scalar_one() == "static"
    migrate(engine)
    assert_ledger_ok(app)
    app.close()
    engine.dispose()
