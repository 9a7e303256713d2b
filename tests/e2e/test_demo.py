"""`flexearn demo` as a bot developer meets it: start it, paste the printed snippets, earn interest."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo_process import Demo, running_demo
from tests.server import FLEXEARN

pytestmark = pytest.mark.slow


def run_printed(code: str, title: str) -> tuple[dict[str, Any], str]:
    """Execute a printed snippet unchanged; its globals (the clients it made) and what it printed."""
    namespace: dict[str, Any] = {"__name__": "__snippet__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<{title}>", "exec"), namespace)
    return namespace, out.getvalue()


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def get_json(demo: Demo, path: str) -> Any:
    with urllib.request.urlopen(demo.base_url + path, timeout=10) as response:
        return json.load(response)


def test_the_printed_snippets_run_as_printed_and_interest_arrives(tmp_path: Path) -> None:
    with running_demo(tmp_path) as demo:
        for label in ("apiKey", "secretKey", "passphrase"):
            assert demo.printed(label) in demo.snippets()["ccxt okx (pip install ccxt)"]
        assert demo.printed("dashboard") == demo.base_url + "/"
        snippets = demo.snippets()
        assert set(snippets) == {
            "python-okx (pip install python-okx)",
            "ccxt okx (pip install ccxt)",
            "ccxt bitget",
            "python-binance (pip install python-binance)",
            "ccxt binance",
        }

        # python-okx: a week of public rate history at once; buys 1000 USDT of savings
        okx_sdk, printed = run_printed(snippets["python-okx (pip install python-okx)"], "python-okx")
        assert "'code': '0'" in printed
        assert "'side': 'purchase'" in printed
        history = okx_sdk["savings"].get_public_borrow_history(ccy="USDT", limit="100")["data"]
        assert len(history) == 100  # 168 settled hours before the demo started
        # ccxt okx: buys 0.5 BTC
        ccxt_okx, printed = run_printed(snippets["ccxt okx (pip install ccxt)"], "ccxt okx")
        assert len(ccxt_okx["okx"].fetch_borrow_rate_history("BTC", limit=100)) == 100
        # ccxt bitget: subscribes 100 USDT to the flexible ladder product
        ccxt_bitget, printed = run_printed(snippets["ccxt bitget"], "ccxt bitget")
        assert "'code': '00000'" in printed
        (holding,) = ccxt_bitget["bitget"].private_earn_get_v2_earn_savings_assets(
            {"periodType": "flexible"}
        )["data"]["resultList"]
        assert Decimal(holding["holdAmount"]) == 100
        # python-binance: the operator's token moved to SPOT, subscribed to its flexible product
        # (a bonus band on its first 100), and found again on a history page by the server's time
        title = "python-binance (pip install python-binance)"
        binance_sdk, printed = run_printed(snippets[title], "python-binance")
        client = binance_sdk["client"]
        (listed,) = client.get_simple_earn_flexible_product_list(asset="FLX")["rows"]
        assert listed["tierAnnualPercentageRate"] == {"0-100FLX": 0.09, "100-10000FLX": 0.015}
        (position,) = client.get_simple_earn_flexible_product_position(asset="FLX")["rows"]
        spot = client.get_asset_balance("FLX")["free"]
        # 150 subscribed, 50 left in SPOT — until a day's distribution (every 24 s at speed 3600)
        # sweeps them into the product: auto-subscribe is on by default, as Binance's
        assert (position["productId"], position["totalAmount"], spot) in {
            (listed["productId"], "150", "50"),  # before the sweep
            (listed["productId"], "150", "0"),  # swept between the two reads
            (listed["productId"], "200", "0"),  # after it
        }
        page = binance_sdk["page"]
        assert [(r["asset"], r["amount"]) for r in page["rows"]] == [("FLX", "150"), ("USDT", "100")]
        assert all(r["time"] <= binance_sdk["now"] for r in page["rows"])
        # ccxt binance: 0.5 BTC from FUNDING to SPOT, subscribed to the flexible BTC product
        ccxt_binance, printed = run_printed(snippets["ccxt binance"], "ccxt binance")
        binance = ccxt_binance["binance"]
        (position,) = binance.sapi_get_simple_earn_flexible_position({"asset": "BTC"})["rows"]
        assert position["totalAmount"] == "0.5"
        assert "'productId': '5', 'type': 'NORMAL'" in printed  # the history page shows the order
        locked = binance.sapi_get_simple_earn_locked_list()["rows"]
        assert {(r["detail"]["asset"], r["detail"]["duration"]) for r in locked} >= {("BTC", 30), ("ETH", 90)}
        listed = binance.sapi_get_simple_earn_flexible_list({"size": 100})["rows"]
        assert {r["asset"] for r in listed} == {"BTC", "ETH", "USDT", "USDC", "FLX"}
        # The flexible BTC product earns Binance's real-time APR, walked each hour of the history:
        # its recorded changes are the façade's rateHistory and the dashboard's APR chart alike.
        (btc,) = [r for r in listed if r["asset"] == "BTC"]
        rates = binance.sapi_get_simple_earn_flexible_history_ratehistory(
            {"productId": btc["productId"], "size": 100}
        )["rows"]
        assert len({r["annualPercentageRate"] for r in rates}) > 1  # it moved
        assert btc["latestAnnualPercentageRate"] in {r["annualPercentageRate"] for r in rates}  # recorded
        chart = get_json(demo, f"/dashboard/api/earn/products/{btc['productId']}/apr")["changes"]
        assert {Decimal(c["apr"]) for c in chart} >= {Decimal(r["annualPercentageRate"]) for r in rates}

        # Interest arrives as the clock runs: matched at the next hour, paid at the one after.
        savings = okx_sdk["savings"]

        def usdt_earnings() -> Decimal:
            (position,) = savings.get_saving_balance(ccy="USDT")["data"]
            return Decimal(position["earnings"])

        assert wait_for("USDT interest", usdt_earnings) > 0
        records = savings.get_lending_history(ccy="USDT")["data"]
        assert 0 < sum(Decimal(r["earnings"]) for r in records) <= usdt_earnings()
        okx = ccxt_okx["okx"]

        def btc_position() -> Any:
            (position,) = okx.private_get_finance_savings_balance({"ccy": "BTC"})["data"]
            return position if Decimal(position["earnings"]) > 0 else None

        position = wait_for("BTC interest", btc_position)
        assert Decimal(position["amt"]) > Decimal("0.5")

        # The dashboard's user view shows the same user (open in the demo: no admin token).
        user = get_json(demo, "/dashboard/api/users/demo")
        assert {p["ccy"] for p in user["positions"]} == {"USDT", "BTC"}
        holdings = {(h["productId"], h["amount"]) for h in user["holdings"]}
        # FLX: 150 subscribed, and the 50 left in SPOT once a day's distribution has passed since
        # (auto-subscribe, on by default as Binance's, sweeps SPOT into the product then)
        assert holdings in ({(1, "100"), (5, "0.5"), (7, "150")}, {(1, "100"), (5, "0.5"), (7, "200")})
    assert "Traceback" not in demo.output
    hours = [line for line in demo.lines if line[:2] == "20" and "USDT" in line]
    assert len(hours) >= 2  # one line per settled business hour


def test_the_same_seed_and_start_give_the_same_world(tmp_path: Path) -> None:
    def world(where: Path) -> Any:
        where.mkdir()
        args = ("--seed", "11", "--start", "2026-03-01T12:00:00", "--history", "24")
        with running_demo(where, *args, speed="0") as demo:
            return [get_json(demo, f"/dashboard/api/markets/{ccy}?window=7d") for ccy in ("BTC", "USDT")]

    assert world(tmp_path / "a") == world(tmp_path / "b")


def test_a_port_in_use_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    (tmp_path / "flexearn-demo.db").write_text("another demo's database")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = subprocess.run(
            [FLEXEARN, "demo", "--port", port], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert (tmp_path / "flexearn-demo.db").read_text() == "another demo's database"


def test_a_stopped_demo_starts_again_with_its_world_clock_and_key(tmp_path: Path) -> None:
    from okx import Funding
    from okx.Finance import Savings

    def savings_api(demo: Demo, key: tuple[str, str, str]) -> Any:
        return Savings.SavingsAPI(*key, False, "1", domain=demo.base_url, debug=False)

    with running_demo(tmp_path, "--history", "24") as first:
        assert "built with seed 7, 24 hours of history" in first.output
        key = (first.printed("apiKey"), first.printed("secretKey"), first.printed("passphrase"))
        savings = savings_api(first, key)
        funding = Funding.FundingAPI(*key, False, "1", domain=first.base_url, debug=False)
        # the demo user's money starts in its trading account: savings are bought from funding
        assert funding.funds_transfer(ccy="USDT", amt="1000", from_="18", to="6")["code"] == "0"
        assert savings.savings_purchase_redemption(ccy="USDT", amt="1000", side="purchase", rate="0.01")[
            "code"
        ] == "0"
        earned = wait_for("USDT interest", lambda: savings.get_lending_history(ccy="USDT")["data"])
        rates = savings.get_public_borrow_history(ccy="BTC", limit="100")["data"]
    key_file = tmp_path / "flexearn-demo.key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600  # it holds the master key and the secret
    assert json.loads(key_file.read_text())["apiKey"] == key[0]
    shown = subprocess.run(
        [FLEXEARN, "clock", "show", "--json", "--db", f"sqlite:///{tmp_path / 'flexearn-demo.db'}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    paused = json.loads(shown.stdout)
    assert paused["speed"] == "0"  # stopped with the demo
    assert int(paused["now"]) > max(int(r["ts"]) for r in earned)

    with running_demo(tmp_path, speed="0") as again:  # a clock standing still: exact times
        assert "resumed (built with seed 7" in again.output
        assert again.printed("apiKey") == key[0]
        savings = savings_api(again, key)  # the first run's key, unchanged
        (position,) = savings.get_saving_balance(ccy="USDT")["data"]
        assert Decimal(position["amt"]) > 1000
        history = savings.get_lending_history(ccy="USDT", limit="100")["data"]
        assert {r["ts"] for r in earned} <= {r["ts"] for r in history}
        # The same public history up to the first run's newest hour (OKX's `after`: older than).
        newest = int(rates[0]["ts"])
        before_stop = savings.get_public_borrow_history(ccy="BTC", after=str(newest + 1), limit="100")
        assert before_stop["data"] == rates
        # The clock goes on from where it stopped, not from where the wall clock has gone since.
        (now,) = get_json(again, "/api/v5/public/time")["data"]
        assert int(now["ts"]) == paused["now"]

    with running_demo(tmp_path, "--reset", "--history", "24") as fresh:
        assert "built with seed 7" in fresh.output
        assert fresh.printed("apiKey") == key[0]  # the key file's key, issued in the new world
        assert savings_api(fresh, key).get_saving_balance(ccy="USDT")["data"] == []


def metric(text: str, name: str) -> float | None:
    """A sample's value in Prometheus exposition text, e.g. `flexearn_settler`."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_the_metrics_say_the_demo_settles(tmp_path: Path) -> None:
    """The demo settles in its own process and serves /metrics from the server's worker: the
    settler lease and the settled hours are visible there, as under `flexearn serve`."""
    with running_demo(tmp_path, "--history", "2", speed="3600") as demo:

        def settled() -> str | None:
            with urllib.request.urlopen(demo.base_url + "/metrics", timeout=10) as response:
                text = response.read().decode()
            hours = metric(text, 'flexearn_settled_periods_total{kind="market_hour"}')
            return text if hours and metric(text, "flexearn_settler") == 1 else None

        text = wait_for("the settler and a settled hour in /metrics", settled, timeout=30)
        assert metric(text, 'flexearn_settlement_run_seconds_count{kind="market_hour"}')


def test_the_operator_names_its_own_token_and_the_binance_snippet_uses_it(tmp_path: Path) -> None:
    with running_demo(tmp_path, "--token", "BNB", "--history", "24", speed="0") as demo:
        assert "500 BNB in its trading account" in demo.output
        title = "python-binance (pip install python-binance)"
        snippet = demo.snippets()[title]
        assert 'asset="BNB"' in snippet
        assert "FLX" not in demo.output
        namespace, _ = run_printed(snippet, "python-binance")
        client = namespace["client"]
        (listed,) = client.get_simple_earn_flexible_product_list(asset="BNB")["rows"]
        assert listed["tierAnnualPercentageRate"] == {"0-100BNB": 0.09, "100-10000BNB": 0.015}
        (position,) = client.get_simple_earn_flexible_product_position(asset="BNB")["rows"]
        assert position["totalAmount"] == "150"
    assert "Traceback" not in demo.output


@pytest.mark.parametrize(
    ("token", "says"),
    [("bnb", "upper-case letters and digits"), ("BTC", "one of the demo's markets"), ("B-B", "upper-case")],
)
def test_a_token_name_that_is_not_a_new_currency_is_refused_before_anything_is_built(
    tmp_path: Path, token: str, says: str
) -> None:
    command = [FLEXEARN, "demo", "--token", token, "--port", "1"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert not (tmp_path / "flexearn-demo.db").exists()
