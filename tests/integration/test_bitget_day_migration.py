"""Migration 0010 on a database whose catalog days turned at 00:00 UTC: each date is paid once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command

from flexearn.adapters import tables as t
from flexearn.adapters.db import alembic_config, make_engine, migrate
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.catalog import DAY_MS
from flexearn.domain.money import D
from flexearn.services import accounts, catalog, catalog_trading, scheduler, settlement
from tests.helpers import T0, advance, assert_ledger_ok, start_clock, with_catalog_schema_of_today

HOUR = 3_600_000
SINGLE = {
    "apyType": "single",
    "apyList": [{"minStepVal": "0", "maxStepVal": "1000000", "currentApy": "36.5"}],
}


def _old_grid(engine: sa.Engine, product_id: int, first_day: int, interest: int, expire: int | None) -> None:
    """What the code before 0010 stored: boundaries at 00:00 UTC."""
    with engine.begin() as conn:
        conn.execute(sa.update(t.product).where(t.product.c.id == product_id).values(first_day=first_day))
        conn.execute(
            sa.update(t.holding)
            .where(t.holding.c.product_id == product_id)
            .values(interest_time=interest, expire_time=expire)
        )


def _boundaries(engine: sa.Engine) -> dict[int, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.product.c.id, t.product.c.first_day, t.holding.c.interest_time)
            .add_columns(t.holding.c.expire_time)
            .join(t.holding, t.holding.c.product_id == t.product.c.id)
            .order_by(t.product.c.id)
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_upgrading_moves_what_is_ahead_to_00_00_utc8_and_pays_each_date_once(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine, "0009")
    with with_catalog_schema_of_today(engine):
        app = Flexearn(database_url, migrate_schema=False)
        start_clock(app, T0 + HOUR)  # 2026-01-01T01:00Z
        accounts.add_currency(app.uow(), "USDT", 6)
        user = accounts.create_user(app.uow(), "alice", "normal")
        accounts.deposit(app.uow(), user, "USDT", D(3000))
        spec = {"coin": "USDT", **SINGLE}
        settled, waiting = (catalog.create_product(app.uow(), product_spec.parse(spec)).id for _ in range(2))
        fixed = catalog.create_product(
            app.uow(), product_spec.parse({**spec, "periodType": "fixed", "period": "2"})
        ).id
        for product in (settled, waiting, fixed):
            period = "fixed" if product == fixed else "flexible"
            catalog_trading.subscribe(app.uow(), user, product, period, D(1000))
        # as the old code had them: interest from the next 00:00 UTC; `waiting` a day later
        _old_grid(engine, settled, T0 + DAY_MS, T0 + DAY_MS, None)
        _old_grid(engine, waiting, T0 + 2 * DAY_MS, T0 + 2 * DAY_MS, None)
        _old_grid(engine, fixed, T0 + DAY_MS, T0 + DAY_MS, T0 + 3 * DAY_MS)
        advance(app, 24)  # 2026-01-02T01:00Z; `settled` settled the day ending at 00:00 UTC
        assert settlement.settle_day(app.uow(), settled, T0 + DAY_MS) is not None
        before = _boundaries(engine)

    migrate(engine)
    eight = 8 * HOUR
    assert _boundaries(engine) == {
        settled: (T0 + DAY_MS, T0 + DAY_MS - eight, None),  # its settled first day stays
        waiting: (T0 + 2 * DAY_MS - eight, T0 + 2 * DAY_MS - eight, None),
        fixed: (T0 + DAY_MS - eight, T0 + DAY_MS - eight, T0 + 3 * DAY_MS - eight),
    }
    command.downgrade(alembic_config(engine), "0009")
    assert _boundaries(engine) == before
    migrate(engine)

    advance(app, 24 * 3)  # to 2026-01-05T01:00Z
    days = scheduler.settle_due_days(app.engine)
    after_old = T0 + DAY_MS + 16 * HOUR  # 2026-01-02T16:00Z: 16 h after the last 00:00 UTC settled
    assert [d.day for d in days if d.product_id == settled] == [after_old + n * DAY_MS for n in range(3)]
    daily = D(1)  # 1000 × 36.5% / 365
    paid = {p: sum(d.interest for d in days if d.product_id == p) for p in (settled, waiting, fixed)}
    # `settled`: dates Jan 2, 3, 4 (UTC+8), each paid once (its Jan 1 was paid at 00:00 UTC, 0)
    assert paid[settled] == 3 * daily
    assert paid[waiting] == 2 * daily  # from 00:00 UTC+8 Jan 2 (was 00:00 UTC Jan 2)
    assert paid[fixed] == 2 * daily  # two days, then expiry at 00:00 UTC+8 of Jan 3
    with engine.connect() as conn:
        expired = conn.execute(sa.select(t.holding.c.open).where(t.holding.c.product_id == fixed)).scalar()
    assert expired is False
    assert accounts.funding_balances(app.uow(), user)[0].available == D(1000) + 7 * daily
    assert_ledger_ok(app)
    app.close()
    engine.dispose()
