"""The dashboard's JSON, in process: what each view reports, and who may see a user's data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.secrets import generate_master_key
from flexearn.api.admin import product_spec
from flexearn.api.app import create_app
from flexearn.api.dashboard import PER_SECOND
from flexearn.bootstrap import Flexearn
from flexearn.config import Settings
from flexearn.domain.catalog import day_start
from flexearn.domain.money import HOURS_PER_YEAR, D
from flexearn.services import catalog, leader
from tests.helpers import T0, advance, lender, market_world

TOKEN = "dashboard-test-token-0123456789"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def world(database_url: str) -> Iterator[Flexearn]:
    """USDT, auction, demand 150: A 100 @ 2%, B 100 @ 5%, C 100 @ 10% (docs/engine.md's worked example)."""
    app = Flexearn(database_url)
    market_world(app, "USDT", demand=D(150))
    lender(app, "A", "USDT", D(100), D("0.02"))
    lender(app, "B", "USDT", D(100), D("0.05"))
    lender(app, "C", "USDT", D(100), D("0.10"), deposit=D(150))
    advance(app, 2)
    yield app
    app.close()


def client(app: Flexearn, admin_token: str = "", *, demo: bool = False) -> Any:
    from starlette.testclient import TestClient  # imported here: it warns on import, filtered above

    config = Settings(master_key=generate_master_key(), admin_token=admin_token, demo=demo)
    return TestClient(create_app(config, app))


def test_the_market_view_has_the_supply_curve_the_match_and_the_hours(world: Flexearn) -> None:
    market = client(world, TOKEN).get("/dashboard/api/markets/usdt?window=24h").json()
    assert [(s["rate"], s["amount"], s["cumulative"]) for s in market["supply"]] == [
        ("0.02", "100.0004851598173515", "100.0004851598173515"),  # with its first hour's interest
        ("0.05", "100.0002425799086757", "200.0007277397260272"),
        ("0.1", "100", "300.0007277397260272"),
    ]
    assert market["match"]["ts"] == T0 + 2 * HOUR_MS
    assert (market["match"]["demand"], market["match"]["rate"], market["match"]["lendingRate"]) == (
        "150",
        "0.05",
        "0.0425",
    )
    assert (market["lent"], market["pending"]) == ("150", "150.0007277397260272")
    assert [h["ts"] for h in market["hours"]] == [T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    assert [(h["lent"], h["pending"]) for h in market["hours"]] == [
        ("150", "150"),
        ("150", "150.0007277397260272"),
    ]


def test_the_overview_and_the_products(world: Flexearn) -> None:
    http = client(world, TOKEN)
    overview = http.get("/dashboard/api/overview").json()
    (usdt,) = overview["markets"]
    assert (usdt["ccy"], usdt["mode"], usdt["preRate"], usdt["lent"]) == ("USDT", "auction", "0.05", "150")
    assert overview["clock"] == {"mode": "simulated", "now": T0 + 1 + 2 * HOUR_MS, "speed": "0"}
    assert http.get("/dashboard/api/products").json() == []
    page = http.get("/")
    assert page.status_code == 200
    assert "flexearn" in page.text
    assert http.get("/dashboard/static/charts.js").status_code == 200


def test_the_overview_says_who_settles_and_how_far(world: Flexearn) -> None:
    http = client(world, TOKEN)
    engine = http.get("/dashboard/api/overview").json()["engine"]
    assert (engine["settler"], engine["lastSettledHour"]) == (None, T0 + 2 * HOUR_MS)
    assert (engine["ledgerCheckedAt"], engine["settlingSince"]) == (None, None)
    assert leader.try_acquire(world.engine, leader.SETTLER, "box:4242:cafe", 10_000)
    assert http.get("/dashboard/api/overview").json()["engine"]["settler"] == "box:4242:cafe"
    leader.release(world.engine, leader.SETTLER, "box:4242:cafe")
    assert http.get("/dashboard/api/overview").json()["engine"]["settler"] is None


def test_a_users_data_needs_the_admin_token_when_one_is_configured(world: Flexearn) -> None:
    http = client(world, TOKEN)
    assert http.get("/dashboard/api/users/A").status_code == 401
    assert http.get("/dashboard/api/users/A", headers={"Authorization": "Bearer wrong"}).status_code == 401
    user = http.get("/dashboard/api/users/A", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert user["user"]["name"] == "A"
    assert [(p["ccy"], p["amt"], p["lent"]) for p in user["positions"]] == [
        ("USDT", "100.0004851598173515", "100.0004851598173515")
    ]
    assert [r["earnings"] for r in user["lending"]] == ["0.0004851598173515"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert http.get(f"/dashboard/api/users/{user['user']['id']}", headers=auth).json()["user"]["name"] == "A"


def test_a_users_earnings_are_its_lending_history_by_hour_with_the_realised_apy(world: Flexearn) -> None:
    advance(world, 3)  # A lends 100 (and its interest) at the clearing 5%, less the 15% fee
    http = client(world, demo=True)
    user = http.get("/dashboard/api/users/A").json()
    (usdt,) = user["earnings"]
    history = sorted(user["lending"], key=lambda r: r["ts"])
    assert len(history) == 4
    lent = {ts: (held, amt, earned) for ts, held, amt, earned in usdt["hours"] if amt != "0"}
    assert lent == {r["ts"]: (r["amt"], r["amt"], r["earnings"]) for r in history}  # all of it lent
    ((last, held, _, earned),) = usdt["hours"][-1:]
    assert last == history[-1]["ts"]
    (position,) = user["positions"]
    assert D(held) + D(earned) == D(position["amt"])  # its interest compounds at the next hour
    earned_total = sum(D(r["earnings"]) for r in history)
    assert D(usdt["total"]) == earned_total
    held_hours = sum(D(h[1]) for h in usdt["hours"])
    apy = D(usdt["realisedApy"])
    assert apy == (earned_total * HOURS_PER_YEAR / held_hours).quantize(D("1E-8"), rounding="ROUND_DOWN")
    assert D("0.03") < apy <= D("0.0425")  # the lender rate, less the hour it waited unlent


def test_money_that_never_lends_earns_a_realised_apy_of_zero(world: Flexearn) -> None:
    advance(world, 3)
    (usdt,) = client(world, demo=True).get("/dashboard/api/users/C").json()["earnings"]  # 10%: above
    assert {(held, lent, earned) for _, held, lent, earned in usdt["hours"]} == {("100", "0", "0")}
    assert (usdt["total"], usdt["realisedApy"]) == ("0", "0")


def test_hours_whose_history_was_pruned_are_left_out_not_counted_as_earning_nothing(world: Flexearn) -> None:
    advance(world, 3)
    before = client(world, demo=True).get("/dashboard/api/users/A").json()["earnings"][0]["hours"]
    first = min(ts for ts, _, lent, _ in before if lent != "0")
    with world.uow() as uow:  # what retention does to the oldest hours (behind a checkpoint)
        uow.conn.execute(sa.delete(t.lending_history).where(t.lending_history.c.ts <= first))
        uow.commit()
    (usdt,) = client(world, demo=True).get("/dashboard/api/users/A").json()["earnings"]
    assert usdt["hours"] == [h for h in before if h[0] > first]


def test_a_product_without_an_order_maximum_shows_none_not_the_internal_bound(world: Flexearn) -> None:
    tiers = [{"minStepVal": "0", "maxStepVal": "1000", "currentApy": "5"}]
    spec = {"coin": "USDT", "periodType": "flexible", "apyType": "single", "apyList": tiers}
    catalog.create_product(world.uow(), product_spec.parse(spec))
    (product,) = client(world, TOKEN).get("/dashboard/api/products").json()
    assert (product["singleMin"], product["singleMax"]) == ("0", None)
    assert product["tiers"] == [{"min": "0", "max": "1000", "apy": "5"}]


def test_the_simple_earn_view_shows_the_catalog_as_binance_lists_it_and_each_products_apr(
    world: Flexearn,
) -> None:
    ladder = [
        {"minStepVal": "0", "maxStepVal": "200", "currentApy": "6"},
        {"minStepVal": "200", "maxStepVal": "5000", "currentApy": "50"},
    ]
    flexible = {"coin": "USDT", "periodType": "flexible", "apyType": "ladder", "apyList": ladder}
    fixed = {
        "coin": "USDT", "periodType": "fixed", "period": "30", "apyType": "single",
        "apyList": [{"minStepVal": "0", "maxStepVal": "100", "currentApy": "3.65"}],
    }  # fmt: skip
    ids = [catalog.create_product(world.uow(), product_spec.parse(s)).id for s in (flexible, fixed)]
    http = client(world, TOKEN)
    assert http.get("/dashboard/api/earn/products").json() == [
        {
            "productId": str(ids[0]),
            "asset": "USDT",
            "kind": "flexible",
            "durationDays": None,
            "apr": "0.06000000",  # Binance's latestAnnualPercentageRate: the first band's
            "bands": [
                {"min": "0", "max": "200", "apr": "0.06000000"},
                {"min": "200", "max": "5000", "apr": "0.50000000"},
            ],
            "status": "PURCHASING",
            "canPurchase": True,
        },
        {
            "productId": str(ids[1]),
            "asset": "USDT",
            "kind": "locked",
            "durationDays": 30,
            "apr": "0.03650000",
            "bands": [],  # a single rate: no bonus tiers, as Binance lists none
            "status": "PURCHASING",
            "canPurchase": True,
        },
    ]
    now = T0 + 1 + 2 * HOUR_MS  # the world's clock
    history = http.get(f"/dashboard/api/earn/products/{ids[0]}/apr").json()
    # no history kept yet: today's rate, dated at the start of the business day (16:00 UTC)
    assert history == {
        "productId": str(ids[0]), "asset": "USDT", "now": now,
        "changes": [{"ts": day_start(now), "apr": "0.06"}],
    }  # fmt: skip
    single = [{"minStepVal": "0", "maxStepVal": "5000", "currentApy": "7.5"}]
    update = {"apyList": single, "apyType": "single"}
    catalog.update_product(world.uow(), ids[0], product_spec.parse(update))
    changed = http.get(f"/dashboard/api/earn/products/{ids[0]}/apr").json()["changes"]
    assert changed == [{"ts": day_start(now), "apr": "0.075"}]
    for unknown in ("999", "abc", "-1", "9" * 5000, "%EF%BC%91"):
        response = http.get(f"/dashboard/api/earn/products/{unknown}/apr")
        assert response.status_code == 404, (unknown, response.text)
        assert response.json()["error"] == "not_found"


def test_a_demo_without_a_token_shows_users_to_anyone(world: Flexearn) -> None:
    http = client(world, demo=True)
    assert http.get("/dashboard/api/users/B").json()["user"]["name"] == "B"
    assert http.get("/dashboard/api/users/nobody").status_code == 404


def test_unknown_markets_and_windows_are_refused(world: Flexearn) -> None:
    http = client(world, TOKEN)
    assert http.get("/dashboard/api/markets/DOGE").status_code == 404
    assert http.get("/dashboard/api/markets/USDT?window=1y").status_code == 400


def test_the_public_views_are_limited_per_client_ip(world: Flexearn) -> None:
    from starlette.testclient import TestClient  # imported here: it warns on import, filtered above

    app = create_app(Settings(master_key=generate_master_key(), admin_token=TOKEN), world)
    poller, neighbour = TestClient(app, client=("10.0.0.1", 4000)), TestClient(app, client=("10.0.0.2", 4000))
    answers = [poller.get("/dashboard/api/overview") for _ in range(PER_SECOND + 5)]
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= 5
    message = f"at most {PER_SECOND} requests a second"
    assert refused[0].json() == {"error": "too_many_requests", "message": message}
    assert refused[0].headers["Retry-After"] == "1"
    assert all(a.status_code == 200 for a in answers[:PER_SECOND])
    assert neighbour.get("/dashboard/api/overview").status_code == 200  # another address: its own limit
    assert poller.get("/dashboard/api/products").status_code == 200  # each view: its own limit
    time.sleep(1.05)
    assert poller.get("/dashboard/api/overview").status_code == 200  # the window has passed


def test_a_viewers_polls_and_clicks_stay_under_the_limit(world: Flexearn) -> None:
    http = client(world, TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(3):  # what the page asks per poll (every 2 s), here three polls at once (clicks)
        for path in ("/overview", "/markets/USDT?window=7d", "/products"):
            assert http.get(f"/dashboard/api{path}").status_code == 200
        assert http.get("/dashboard/api/users/A", headers=auth).status_code == 200
