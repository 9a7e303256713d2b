"""/metrics on a real server with two worker processes and a settling scheduler beside them.

Counters and histograms are shared by every process of a server (prometheus_client's
multi-process mode), so a scrape answered by either worker counts every request, and the
hours the scheduler thread of the main process settles show up too. Amounts and rates are read
from the database at each scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from flexearn.adapters import clock
from flexearn.adapters.clock import HOUR_MS
from flexearn.adapters.secrets import generate_master_key
from flexearn.api.admin import product_spec
from flexearn.bootstrap import Flexearn
from flexearn.domain.money import D
from flexearn.services import catalog
from tests.helpers import T0, lender, market_world
from tests.observability.scrape import Scrape
from tests.server import running_server

WORKERS = ("--workers", "2", "--scheduler")


@pytest.fixture
def served(database_url: str) -> Iterator[tuple[Flexearn, str]]:
    """USDT lenders A 100 @ 2%, B 100 @ 5%, C 100 @ 10% against a demand of 150; a catalog product;
    the clock standing still at T0 + 1 ms; two workers and a scheduler polling every 0.1 s."""
    app = Flexearn(database_url)
    market_world(app, "USDT", precision=8, demand=D(150))
    for name, rate in (("a", "0.02"), ("b", "0.05"), ("c", "0.10")):
        lender(app, name, "USDT", D(100), D(rate))
    catalog.create_product(
        app.uow(),
        product_spec.parse(
            {"coin": "USDT", "apyList": [{"minStepVal": "0", "maxStepVal": "100", "currentApy": "5"}]}
        ),
    )
    env = {"FLEXEARN_POLL_SECONDS": "0.1"}
    try:
        with running_server(database_url, generate_master_key(), *WORKERS, env=env) as base:
            yield app, base
    finally:
        app.close()


def wait_for(base: str, name: str, at_least: float, **labels: str) -> Scrape:
    deadline = time.monotonic() + 30
    while True:
        scrape = Scrape(base)
        if scrape.value(name, **labels) >= at_least or time.monotonic() > deadline:
            return scrape
        time.sleep(0.2)


def test_requests_are_counted_by_facade_endpoint_and_code_across_workers(
    served: tuple[Flexearn, str],
) -> None:
    _, base = served
    before = Scrape(base)
    okx_time = {"facade": "okx", "endpoint": "/api/v5/public/time"}
    with httpx.Client(base_url=base) as client:
        for _ in range(5):
            assert client.get("/api/v5/public/time").status_code == 200
        assert client.get("/api/v5/asset/balances").json()["code"] == "50103"  # no key
        assert client.get("/api/v2/public/time").status_code == 200
        summary = [client.get("/api/v5/finance/savings/lending-rate-summary") for _ in range(20)]
        invented = [client.request(f"FROB{n}", "/api/v5/finance/savings/balance") for n in range(3)]
    assert {r.status_code for r in invented} == {404}
    too_many = sum(r.status_code == 429 for r in summary)
    assert too_many > 0  # 6 per second per IP, in each worker

    for _ in range(3):  # whichever worker answers the scrape, it counts every worker's requests
        after = Scrape(base)
        requests = "flexearn_http_requests_total"
        assert after.value(requests, **okx_time, code="ok", status="200") - before.value(
            requests, **okx_time, code="ok", status="200"
        ) == 5
        assert after.value(requests, facade="okx", endpoint="/api/v5/asset/balances", code="50103") == 1
        assert after.value(requests, facade="bitget", endpoint="/api/v2/public/time") == 1
        refusals = {"facade": "okx", "endpoint": "/api/v5/finance/savings/lending-rate-summary"}
        assert after.value("flexearn_rate_limit_refusals_total", **refusals) == too_many
        assert after.value(requests, **refusals, status="429", code="50011") == too_many
        latency = "flexearn_http_request_duration_seconds_count"
        assert after.value(latency, **okx_time) - before.value(latency, **okx_time) == 5
        assert after.has("flexearn_http_request_duration_seconds_bucket", **okx_time, le="0.005")
        # a method is a client's token: any but HTTP's own is labelled "other" (labels must be few)
        assert after.value(requests, facade="okx", method="other", status="404") == 3
        assert not [labels for _, labels, _ in after.samples if labels.get("method", "").startswith("FRO")]


def test_settlements_move_the_settlement_metrics_and_the_database_gauges(
    served: tuple[Flexearn, str],
) -> None:
    app, base = served
    before = Scrape(base)
    assert before.value("flexearn_settled_periods_total") == 0
    assert before.value("flexearn_savings_pending", ccy="USDT") == 300
    assert not before.has("flexearn_borrow_rate", ccy="USDT")  # no hour settled yet

    advanced_at = time.time()
    with app.uow() as uow:  # time passes; the scheduler of the main process settles what is due
        clock.advance(uow.conn, 24 * HOUR_MS)
        uow.commit()
    after = wait_for(base, "flexearn_settled_periods_total", 25)
    # ... and then checks the ledger, green: a checkpoint newer than the settlement.
    checked = wait_for(base, "flexearn_ledger_last_green_check_seconds", advanced_at)
    assert checked.value("flexearn_ledger_last_green_check_seconds") >= advanced_at
    assert after.value("flexearn_settled_periods_total", kind="market_hour") == 24
    assert after.value("flexearn_settled_periods_total", kind="catalog_day") == 1
    assert after.value("flexearn_settlement_rows_count", kind="market_hour") == 24
    assert after.value("flexearn_settlement_rows_sum", kind="market_hour") > 0  # positions per hour
    assert after.value("flexearn_settlement_run_seconds_count", kind="market_hour") >= 1
    assert after.value("flexearn_settlement_run_seconds_sum", kind="market_hour") > 0

    assert after.value("flexearn_savings_lent", ccy="USDT") == 150  # A in full, B in part
    assert after.value("flexearn_borrow_rate", ccy="USDT") == pytest.approx(0.05)
    assert after.value("flexearn_lending_rate", ccy="USDT") == pytest.approx(0.0425)
    assert after.value("flexearn_borrow_demand", ccy="USDT") == 150
    assert after.value("flexearn_interest_paid", ccy="USDT") > 0
    assert after.value("flexearn_savings_amount", ccy="USDT") == pytest.approx(
        300 + after.value("flexearn_interest_paid", ccy="USDT")
    )
    assert after.value("flexearn_last_settled_hour_seconds", ccy="USDT") == (T0 + 24 * HOUR_MS) / 1000
    assert after.value("flexearn_business_time_seconds") >= (T0 + 24 * HOUR_MS) / 1000
