"""The sandbox world of `flexearn demo`: currencies, markets, lenders and a fast clock."""

from __future__ import annotations

import random
from decimal import Decimal

from flexearn.adapters import clock
from flexearn.bootstrap import Flexearn
from flexearn.domain.demand import SimulatedDemand
from flexearn.domain.money import D, plain
from flexearn.services import accounts, markets, savings

# currency: precision, matching mode, typical lender size, simulated mean demand, base borrow rate
WORLD: dict[str, tuple[int, str, Decimal, Decimal, Decimal]] = {
    "BTC": (8, "auction", D("0.5"), D("12"), D("0.02")),
    "ETH": (8, "auction", D("8"), D("200"), D("0.03")),
    "SOL": (8, "auction", D("150"), D("3500"), D("0.05")),
    "USDT": (6, "pro_rata", D("20000"), D("450000"), D("0.08")),
    "USDC": (6, "pro_rata", D("15000"), D("250000"), D("0.06")),
}
LENDERS = 40
DEMO_USER = "demo"


def seed_world(app: Flexearn, *, speed: Decimal, seed: int) -> str:
    """Create the world on an empty database and start the simulated clock; returns a summary."""
    rng = random.Random(seed)
    with app.uow() as uow:
        clock.set_simulated(uow.conn, speed, clock.floor_hour(clock.wall_ms()))
        uow.commit()
    for ccy, (precision, mode, _size, mean, base_rate) in WORLD.items():
        accounts.add_currency(app.uow(), ccy, precision)
        markets.set_market(
            app.uow(),
            ccy,
            mode=mode,
            demand_source="simulated",
            demand=mean,
            borrow_rate=base_rate,
            simulation=SimulatedDemand(mean=mean, base_rate=base_rate, seed=seed),
        )
    for n in range(LENDERS):
        user_id = accounts.create_user(app.uow(), f"lender{n:02d}", "normal")
        for ccy, (precision, _mode, size, _mean, base_rate) in WORLD.items():
            amount = (size * D(rng.randint(10, 400)) / 100).quantize(D(1).scaleb(-min(precision, 4)))
            # Minimum rates spread around the base rate, in whole basis points.
            rate = max(D("0.01"), (base_rate * D(rng.randint(20, 220)) / 100).quantize(D("0.0001")))
            accounts.deposit(app.uow(), user_id, ccy, amount)
            savings.purchase(app.uow(), user_id, ccy, amount, rate)
    demo_id = accounts.create_user(app.uow(), DEMO_USER)
    for ccy, (_p, _m, size, _mean, _rate) in WORLD.items():
        accounts.deposit(app.uow(), demo_id, ccy, size * 10)
    lines = [
        f"flexearn demo on {app.engine.url.render_as_string(hide_password=True)}",
        f"clock: simulated, {plain(speed)}x; seed {seed}; {LENDERS} lenders",
        f"user {DEMO_USER!r} (id {demo_id}) funded with: "
        + ", ".join(f"{plain(size * 10)} {ccy}" for ccy, (_p, _m, size, _mn, _r) in WORLD.items()),
        "try: flexearn savings purchase demo USDT 1000 --rate 0.05 --db " + str(app.engine.url),
    ]
    return "\n".join(lines)
