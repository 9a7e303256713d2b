"""A sandbox's clock across a restart: it goes on from where it stopped, not from where the wall
clock has gone meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flexearn.adapters import clock
from flexearn.adapters.clock import HOUR_MS
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import clock as clock_service
from tests.helpers import T0, advance, lender, market_world


@pytest.fixture
def app(database_url: str) -> Iterator[Flexearn]:
    app = Flexearn(database_url)
    market_world(app, "USDT", demand=D(50))
    lender(app, "ann", "USDT", D(100))
    advance(app, 3)  # hours T0+1h … T0+3h settled
    yield app
    app.close()


def test_a_paused_clock_resumes_where_it_was_paused(app: Flexearn) -> None:
    with app.uow() as uow:
        clock.set_simulated(uow.conn, D(360), T0 + 3 * HOUR_MS + 1234)
        uow.commit()
    paused = clock_service.pause(app.uow()).now
    assert clock_service.show(app.uow()).speed == 0
    assert clock_service.resume(app.uow(), D(0)).now == paused


def test_a_killed_demos_clock_resumes_from_the_last_time_it_recorded(app: Flexearn) -> None:
    # still "running" at 360x since ten wall hours ago: 150 business days ahead by now
    with app.uow() as uow:
        clock.set_simulated(uow.conn, D(360), T0 + 3 * HOUR_MS + 1234)
        uow.conn.execute(clock.clock.update().values(real_anchor=clock.wall_ms() - 10 * HOUR_MS))
        uow.commit()
    assert clock_service.show(app.uow()).now > T0 + 100 * 24 * HOUR_MS
    assert clock_service.resume(app.uow(), D(0)).now == T0 + 3 * HOUR_MS  # the last settled hour
