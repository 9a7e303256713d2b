"""The dashboard in a real browser: every chart drawn from live data, matching the APIs' numbers."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Chart, chromium, read_charts
from tests.e2e.demo_process import Demo, running_demo

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).with_name("artifacts")
README_SCREENSHOT = Path(__file__).parents[2] / "docs" / "dashboard.png"
HOUR = 3_600_000


def get_json(demo: Demo, path: str) -> Any:
    with urllib.request.urlopen(demo.base_url + path, timeout=10) as response:
        return json.load(response)


def okx_rate_history(demo: Demo, ccy: str, since: int) -> dict[int, dict[str, str]]:
    """The OKX façade's public hourly rates from `since` on, by hour (paged 100 at a time)."""
    rows: dict[int, dict[str, str]] = {}
    after = ""
    while True:
        page = get_json(demo, f"/api/v5/finance/savings/lending-rate-history?ccy={ccy}&limit=100{after}")
        rows.update({int(r["ts"]): r for r in page["data"]})
        if not page["data"] or int(page["data"][-1]["ts"]) <= since:
            return rows
        after = f"&after={page['data'][-1]['ts']}"


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def assert_close(drawn: float, expected: float, tolerance: float, what: str) -> None:
    assert abs(drawn - expected) <= tolerance, f"{what}: drawn {drawn}, the API says {expected}"


def by_hour(chart: Chart, series: str) -> dict[int, float]:
    """A time series' vertices as {hour: value}, each x snapped to the hour it was drawn at."""
    points = {}
    for x, y in chart.series[series]:
        hour = round(x / HOUR) * HOUR
        assert_close(x, hour, 0.05 * HOUR + chart.x_per_pixel, f"{series} x")
        points[hour] = y
    return points


def check_rate_history(demo: Demo, chart: Chart) -> None:
    """Borrow and lending rates drawn hour by hour, as the OKX façade publishes them."""
    borrow, lending = by_hour(chart, "rate"), by_hour(chart, "lendingRate")
    assert borrow.keys() == lending.keys()
    published = okx_rate_history(demo, "USDT", min(borrow))
    assert set(borrow) <= set(published)
    first, last = min(borrow), max(borrow)
    assert set(borrow) == {ts for ts in published if first <= ts <= last}  # no hour left out
    tolerance = chart.y_per_pixel * 0.05
    for ts, rate in borrow.items():
        assert_close(rate, float(published[ts]["rate"]), tolerance, f"borrow rate at {ts}")
        # OKX writes lendingRate with 4 places, cut down; the chart draws the exact rate
        published_lending = float(published[ts]["lendingRate"])
        assert_close(lending[ts], published_lending + 0.00005, tolerance + 0.00005, f"lending rate at {ts}")


def check_amounts(demo: Demo, chart: Chart) -> None:
    """Lent, lent + pending (= supply) and demand per hour, as the dashboard API reports them."""
    hours = {h["ts"]: h for h in get_json(demo, "/dashboard/api/markets/USDT?window=30d")["hours"]}
    tolerance = chart.y_per_pixel * 0.05
    lent, top, demand = (by_hour(chart, s) for s in ("lent", "pending", "demand"))
    assert set(lent) <= set(hours)
    assert len(lent) > 168  # the week before the demo started, and the hours since
    for ts, value in lent.items():
        assert_close(value, float(hours[ts]["lent"]), tolerance, f"lent at {ts}")
        assert_close(top[ts], float(hours[ts]["supply"]), tolerance, f"lent + pending at {ts}")
        assert_close(demand[ts], float(hours[ts]["demand"]), tolerance, f"demand at {ts}")


def check_supply_curve(demo: Demo, driver: Any) -> None:
    """The staircase of offers by minimum rate, and the demand and clearing-rate markers, of the
    hour the chart says it shows (re-read until page and API agree on the hour)."""

    def agreeing() -> tuple[Chart, dict[str, Any]] | None:
        chart = read_charts(driver)["supply"]
        market = get_json(demo, "/dashboard/api/markets/USDT?window=24h")
        return (chart, market) if str(market["match"]["ts"]) == chart.data["hour"] else None

    chart, market = wait_for("the supply chart and the API on the same hour", agreeing)
    steps = market["supply"]
    assert len(steps) > 10
    drawn = chart.series["supply"]
    assert len(drawn) == 2 * len(steps)  # each rate level: where it starts and where it ends
    x_tol, y_tol = chart.x_per_pixel * 0.05, chart.y_per_pixel * 0.05
    start = 0.0
    for i, step in enumerate(steps):
        (x_from, y_from), (x_to, y_to) = drawn[2 * i : 2 * i + 2]
        assert_close(x_from, start, x_tol, f"step {i} start")
        assert_close(x_to, float(step["cumulative"]), x_tol, f"step {i} end")
        assert_close(y_from, float(step["rate"]), y_tol, f"step {i} rate")
        assert_close(y_to, float(step["rate"]), y_tol, f"step {i} rate")
        start = float(step["cumulative"])
    ((demand_x, _), _) = chart.series["demand"]
    assert_close(demand_x, float(market["match"]["demand"]), x_tol, "demand line")
    ((_, clearing_y), _) = chart.series["clearing"]
    assert_close(clearing_y, float(market["match"]["rate"]), y_tol, "clearing rate line")


def test_the_dashboard_draws_live_data_and_follows_the_clock(tmp_path: Path) -> None:
    with chromium() as driver, running_demo(tmp_path, speed="720") as demo:
        driver.get(f"{demo.base_url}/?poll=500#ccy=USDT&window=30d")
        wait_for("the charts", lambda: {"supply", "rates", "amounts"} <= read_charts(driver).keys())

        charts = read_charts(driver)
        check_rate_history(demo, charts["rates"])
        check_amounts(demo, charts["amounts"])
        check_supply_curve(demo, driver)

        overview = get_json(demo, "/dashboard/api/overview")
        cards = driver.execute_script(
            "return [...document.querySelectorAll('.card')].map(c => [c.dataset.ccy,"
            " c.querySelector('[data-series=spark]').getAttribute('d').split(/[ML]/).length - 1])"
        )
        assert [ccy for ccy, _ in cards] == [m["ccy"] for m in overview["markets"]]
        assert all(points >= 23 for _, points in cards)  # a day of borrow rates per market
        products = get_json(demo, "/dashboard/api/products")
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#products tbody tr')].map(r => r.innerText)"
        )
        assert len(rows) == len(products) == 4
        assert "0–200: 6%" in rows[0].replace("\n", " ")
        assert "200–5k: 50%" in rows[0].replace("\n", " ")

        driver.find_element("id", "user-ref").send_keys("lender03")  # a lender of the seeded world
        driver.find_element("css selector", "#user-form button").click()
        wait_for("the user view", lambda: "Funding balances" in _text(driver))
        user = get_json(demo, "/dashboard/api/users/lender03")
        tables = dict(
            driver.execute_script(
                "return [...document.querySelectorAll('#user table')].map(t =>"
                " [t.closest('.scroll').previousElementSibling.innerText,"
                "  [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText))])"
            )
        )
        shown = {
            "Funding balances": user["funding"],
            "Savings positions": user["positions"],
            "Catalog holdings": user["holdings"],
            "Lending history (latest hours)": user["lending"],
            "Catalog orders": user["orders"],
        }
        assert {title: len(rows) for title, rows in tables.items()} == {
            title: len(rows) for title, rows in shown.items() if rows
        }
        assert len(user["positions"]) == 5  # every currency
        funding = [[b["ccy"], b["available"], b["frozen"]] for b in user["funding"]]
        assert tables["Funding balances"] == funding

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(shot))
        if os.environ.get("FLEXEARN_UPDATE_SCREENSHOT") == "1":
            README_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, README_SCREENSHOT)

        # As the clock runs, the rate history grows by the hours that settle.
        before = read_charts(driver)["rates"]
        first_hours = by_hour(before, "rate")

        def grown() -> Chart | None:
            after = read_charts(driver)["rates"]
            return after if max(by_hour(after, "rate")) > max(first_hours) else None

        after = wait_for("a new hour on the rate chart", grown)
        hours = by_hour(after, "rate")
        assert len(hours) > len(first_hours)
        assert set(first_hours) <= set(hours)
        check_rate_history(demo, after)
    assert "Traceback" not in demo.output


def _text(driver: Any, element_id: str = "user") -> str:
    return str(driver.find_element("id", element_id).text)
