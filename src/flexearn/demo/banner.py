"""What `flexearn demo` prints on start: where it serves, the demo user's key, and client snippets.

Each snippet runs as printed (tests/e2e executes them): the lines between two `# ----` markers
go into a Python file or REPL as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from flexearn.demo.world import DEMO_USER, DemoWorld, coins, products
from flexearn.domain.money import plain

MARKER = "# ----"


def python_okx(base: str, world: DemoWorld) -> str:
    k = world.key
    return f"""\
from okx import Funding
from okx.Finance import Savings

keys = dict(api_key="{k.api_key}", api_secret_key="{k.secret_key}", passphrase="{k.passphrase}")
savings = Savings.SavingsAPI(**keys, flag="1", domain="{base}")
funding = Funding.FundingAPI(**keys, flag="1", domain="{base}")
print(funding.funds_transfer(ccy="USDT", amt="1000", from_="18", to="6"))  # trading -> funding
print(funding.get_balances(ccy="USDT")["data"])
print(savings.savings_purchase_redemption(ccy="USDT", amt="1000", side="purchase", rate="0.01"))
print(savings.get_saving_balance(ccy="USDT")["data"])  # pending now, lent at the next hour
print(savings.get_public_borrow_history(ccy="USDT")["data"][:3])
"""


def ccxt_okx(base: str, world: DemoWorld) -> str:
    k = world.key
    return f"""\
import ccxt

okx = ccxt.okx({{"apiKey": "{k.api_key}", "secret": "{k.secret_key}", "password": "{k.passphrase}"}})
okx.urls["api"] = {{"rest": "{base}"}}
print(okx.fetch_borrow_rate_history("BTC", limit=3))
print(okx.transfer("BTC", 0.5, "trading", "funding"))  # savings are bought from funding
order = {{"ccy": "BTC", "amt": "0.5", "side": "purchase", "rate": "0.01"}}
print(okx.private_post_finance_savings_purchase_redempt(order))
print(okx.private_get_finance_savings_balance({{"ccy": "BTC"}})["data"])
"""


def ccxt_bitget(base: str, world: DemoWorld) -> str:
    k = world.key
    flexible = world.product_ids[0]
    return f"""\
import ccxt

bitget = ccxt.bitget({{"apiKey": "{k.api_key}", "secret": "{k.secret_key}", "password": "{k.passphrase}"}})
bitget.urls["api"] = dict.fromkeys(bitget.urls["api"], "{base}")
print(bitget.private_earn_get_v2_earn_savings_product({{"coin": "USDT"}})["data"])
print(bitget.transfer("USDT", 100, "swap", "spot"))  # USDT-M futures -> spot, where Earn buys from
order = {{"productId": "{flexible}", "periodType": "flexible", "amount": "100"}}
print(bitget.private_earn_post_v2_earn_savings_subscribe(order))
print(bitget.private_earn_get_v2_earn_savings_assets({{"periodType": "flexible"}})["data"])
"""


def _flexible(world: DemoWorld, coin: str) -> int:
    """The id of the demo's flexible product of `coin` (Binance's `productId`)."""
    (found,) = [
        i for i, p in zip(world.product_ids, products(world.token), strict=True)
        if (p["coin"], p["periodType"]) == (coin, "flexible")
    ]  # fmt: skip
    return found


def python_binance(base: str, world: DemoWorld) -> str:
    k = world.key
    token = world.token
    return f"""\
from binance.client import Client

client = Client("{k.api_key}", "{k.secret_key}", ping=False)
client.API_URL, client.MARGIN_API_URL = "{base}/api", "{base}/sapi"
print(client.universal_transfer(type="FUNDING_MAIN", asset="{token}", amount="200"))  # FUNDING -> SPOT
print(client.get_asset_balance("{token}"))  # Simple Earn buys from SPOT
print(client.get_simple_earn_flexible_product_list(asset="{token}")["rows"])
print(client.subscribe_simple_earn_flexible_product(productId="{_flexible(world, token)}", amount="150"))
print(client.get_simple_earn_flexible_product_position(asset="{token}")["rows"])
now = client.get_server_time()["serverTime"]  # the sandbox's clock runs fast: page by its time
page = client.margin_v1_get_simple_earn_flexible_history_subscription_record(endTime=now, size=10)
print(page["total"], page["rows"])
"""


def ccxt_binance(base: str, world: DemoWorld) -> str:
    k = world.key
    return f"""\
import ccxt

spot_only = {{"fetchMarkets": {{"types": ["spot"]}}, "fetchMargins": False, "fetchCurrencies": False}}
binance = ccxt.binance({{"apiKey": "{k.api_key}", "secret": "{k.secret_key}", "options": spot_only}})
binance.urls["api"] = {{k: "{base}" + v.partition(".com")[2] for k, v in binance.urls["api"].items()}}
print(binance.transfer("BTC", 0.5, "funding", "spot"))  # Simple Earn buys from SPOT
print(binance.fetch_balance()["BTC"])
print(binance.sapi_get_simple_earn_flexible_list({{"asset": "BTC"}})["rows"])
order = {{"productId": "{_flexible(world, "BTC")}", "amount": "0.5"}}
print(binance.sapi_post_simple_earn_flexible_subscribe(order))
print(binance.sapi_get_simple_earn_flexible_position({{"asset": "BTC"}})["rows"])
page = {{"endTime": binance.fetch_time(), "current": 1, "size": 10}}  # by the sandbox's (fast) clock
print(binance.sapi_get_simple_earn_flexible_history_subscriptionrecord(page)["rows"])
"""


SNIPPETS = {
    "python-okx (pip install python-okx)": python_okx,
    "ccxt okx (pip install ccxt)": ccxt_okx,
    "ccxt bitget": ccxt_bitget,
    "python-binance (pip install python-binance)": python_binance,
    "ccxt binance": ccxt_binance,
}


def _hour_every(speed: Decimal) -> str:
    if speed <= 0:
        return "standing still (advance it with `flexearn clock advance`)"
    seconds = Decimal(3600) / speed
    return f"one business hour every {plain(round(seconds, 2))} s"


def banner(base: str, database: str, world: DemoWorld, *, speed: Decimal, key_file: Path) -> str:
    k = world.key
    funded = ", ".join(f"{plain(coin.lot * 10)} {ccy}" for ccy, coin in coins(world.token).items())
    listed = ", ".join(
        f"{i} {p['coin']} {p['periodType']} ({p.get('productLevel', 'normal')})"
        for i, p in zip(world.product_ids, products(world.token), strict=True)
    )
    when = datetime.fromtimestamp(world.now / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if world.resumed:
        story = f"resumed (built with seed {world.seed}; --reset rebuilds it)"
    else:
        story = f"built with seed {world.seed}, {world.history_hours} hours of history"
    lines = [
        "flexearn demo: a sandbox with simulated borrowers and a fast clock",
        f"  database   {database}: {story}",
        f"  clock      simulated, {_hour_every(speed)} (--speed {plain(speed)}), from {when} UTC",
        f"  base URL   {base}   (OKX v5, Bitget v2 and Binance Simple Earn façades)",
        f"  dashboard  {base}/",
        f"  user       {DEMO_USER} (id {world.user_id}), funded with {funded} in its trading account",
        f"  products   {listed}",
        f"  key file   {key_file} (the key below, kept for the next start)",
        f"  apiKey     {k.api_key}",
        f"  secretKey  {k.secret_key}",
        f"  passphrase {k.passphrase}   (OKX and Bitget; Binance signs with the key and secret alone)",
        "",
    ]
    for title, snippet in SNIPPETS.items():
        lines += [f"{MARKER} {title} ----", snippet(base, world).rstrip()]
    lines += [
        MARKER,
        "",
        "What you buy is pending until the next hour's match and earns from the hour after it.",
        "Settled hours follow (borrow rate per currency). Ctrl-C stops.",
    ]
    return "\n".join(lines)



def hour_line(hour: str, rates: dict[str, Decimal]) -> str:
    """One settled business hour: each currency's borrow rate."""
    return f"{hour}  " + "  ".join(f"{ccy} {rate * 100:.2f}%" for ccy, rate in rates.items())
