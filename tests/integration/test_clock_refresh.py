"""The business clock an API process keeps in memory is read again in a database slot while the
requests go on on the event loop (`Facade.clock_kept`): once it is older than its `max_age`, one
refresh runs in a slot and the requests meanwhile are answered on the loop; only a clock older
than twice that sends them to slots."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flexearn.adapters import clock
from flexearn.adapters.secrets import SecretBox, generate_master_key
from flexearn.api import app as api_app
from flexearn.api import auth
from flexearn.api.admission import Admission
from flexearn.api.app import create_app
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.money import D
from flexearn.services import keys
from tests.contract.okx_http import signed_headers
from tests.helpers import saver

BALANCE = "/api/v5/finance/savings/balance"
MAX_AGE_S = 0.3


def test_an_old_clock_is_read_again_in_one_slot_while_the_loop_answers(
    app: Flexearn, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = generate_master_key()
    key = keys.create_key(app.uow(), SecretBox(master), saver(app, D(5)), "read")
    clocks: list[clock.ClockCache] = []

    def kept_briefly(engine: Any) -> clock.ClockCache:
        clocks.append(clock.ClockCache(engine, max_age=MAX_AGE_S))
        return clocks[-1]

    monkeypatch.setattr(api_app, "ClockCache", kept_briefly)
    monkeypatch.setattr(auth, "REVOCATION_CHECK_SECONDS", 60.0)  # keys kept: only the clock is old
    in_slots: list[str] = []
    run = Admission.run

    async def recorded(self: Admission, deadline: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        in_slots.append(fn.__name__)
        return await run(self, deadline, fn, *args, **kw)

    monkeypatch.setattr(Admission, "run", recorded)
    served = create_app(Settings(master_key=master, demo=True, rate_limit_scale=100), app)
    (kept,) = clocks

    async def scenario() -> list[list[int]]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://flexearn") as client:

            async def at_once() -> list[int]:
                sent = [signed_headers(key, "GET", BALANCE) for _ in range(8)]
                answers = await asyncio.gather(*(client.get(BALANCE, headers=h) for h in sent))
                return [answer.status_code for answer in answers]

            statuses = [await at_once()]  # the key loaded (in a slot), the loop's connections opened
            while kept.fresh():  # the first requests' passphrase checks may have taken a while:
                await asyncio.sleep(0.01)
            kept.refresh()  # read now, so that the next requests find it as old as this test says
            await asyncio.sleep(MAX_AGE_S * 1.3)  # past max_age, within twice it
            in_slots.clear()
            statuses.append(await at_once())
            for _ in range(100):  # the refresh, in its slot
                if kept.fresh():
                    break
                await asyncio.sleep(0.01)
            assert in_slots == ["refresh"]  # one read of the clock in a slot; every request on the loop
            assert kept.fresh()
            await asyncio.sleep(MAX_AGE_S * 2.2)  # past twice max_age: no longer kept
            assert not kept.within(2 * MAX_AGE_S)
            statuses.append(await at_once())
            assert kept.fresh()  # read again before the answers (in the first request's slot)
            return statuses

    assert asyncio.run(scenario()) == [[200] * 8] * 3
