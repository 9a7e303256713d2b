"""A real-time product's APR and its history (Binance's flexible model, `domain/realtime.py`).

Every change of the APR is a row of `earn_product_apr` (product, time, APR in percent), written
when it happens: the operator's rate when set (`manual`, and where a walk starts), the lending
market's settled hourly lending rate of the product's currency (`market`), the seeded walk's move
each hour (`simulated`). The last two are caught up to the business clock each settlement pass
(`catch_up_all`) and, before a day is paid, to the day's end (`catch_up`): a catch-up after
downtime writes the hours missed, the same values as on time (the walk is a function of its seed).
The day's minutes, Binance's `rateHistory` and the dashboard's chart all read these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from flexearn.adapters import repository as repo
from flexearn.adapters import tables as t
from flexearn.adapters.clock import HOUR_MS, floor_hour
from flexearn.domain.catalog import AprSource, Product
from flexearn.domain.realtime import AprPoint, walk_step
from flexearn.services.catalog_rows import load_product
from flexearn.services.unit_of_work import UnitOfWork

a = t.product_apr


def record(conn: sa.Connection, product_id: int, ts: int, apr: Decimal) -> None:
    """The APR is `apr` from `ts` on (a second change at the same instant replaces the first)."""
    conn.execute(sa.delete(a).where(a.c.product_id == product_id, a.c.ts == ts))
    conn.execute(sa.insert(a).values(product_id=product_id, ts=ts, apr=apr))


def latest(conn: sa.Connection, product_id: int, at: int) -> AprPoint | None:
    """The APR in effect at `at`: the latest change at or before it."""
    row = conn.execute(
        sa.select(a.c.ts, a.c.apr)
        .where(a.c.product_id == product_id, a.c.ts <= at)
        .order_by(a.c.ts.desc())
        .limit(1)
    ).first()
    return None if row is None else AprPoint(row.ts, row.apr)


def points(conn: sa.Connection, product_id: int, begin: int, end: int) -> list[AprPoint]:
    """The changes that set the APR over [begin, end): the one in effect at `begin`, then the
    ones inside, oldest first."""
    first = latest(conn, product_id, begin)
    inside = conn.execute(
        sa.select(a.c.ts, a.c.apr)
        .where(a.c.product_id == product_id, a.c.ts > begin, a.c.ts < end)
        .order_by(a.c.ts)
    ).all()
    return ([] if first is None else [first]) + [AprPoint(r.ts, r.apr) for r in inside]


def current(conn: sa.Connection, product_ids: Sequence[int], now: int) -> dict[int, Decimal]:
    """Each real-time product's APR now (0 before its first is recorded)."""
    out = {}
    for product_id in product_ids:
        point = latest(conn, product_id, now)
        out[product_id] = Decimal(0) if point is None else point.apr
    return out


def apr_history(
    uow: UnitOfWork, product_id: int, start: int | None = None, end: int | None = None
) -> list[tuple[int, Decimal]]:
    """The product's APR (time, APR in percent) over [start, end] (by default from its first
    change to now), oldest first: the APR in effect at `start`, dated `start`, then every change
    after it. For Binance's `rateHistory` and the dashboard's APR chart;
    empty for a product of Bitget's model."""
    with uow:
        load_product(uow.conn, product_id)
        end = uow.now() if end is None else min(end, uow.now())
        if start is not None and start > end:
            return []
        begin = -1 if start is None else start  # -1: before every change
        return [(max(ts, begin), apr) for ts, apr in points(uow.conn, product_id, begin, end + 1)]


def current_aprs(uow: UnitOfWork, product_ids: Sequence[int]) -> dict[int, Decimal]:
    """Each real-time product's APR now (0 before its first is recorded)."""
    with uow:
        return current(uow.conn, product_ids, uow.now())


def catch_up(conn: sa.Connection, product: Product, until: int) -> int:
    """Record the moves of a `market` or `simulated` product's APR up to `until`; how many."""
    last = latest(conn, product.id, until)
    if product.apr_source is AprSource.MARKET:
        moves = _market_moves(conn, product, last, until)
    elif product.apr_source is AprSource.SIMULATED and last is not None and product.walk is not None:
        moves = _walk_moves(product, last, until)
    else:
        return 0
    for ts, apr in moves:
        repo.insert_ignore(conn, a, {"product_id": product.id, "ts": ts, "apr": apr})
    return len(moves)


def _market_moves(
    conn: sa.Connection, product: Product, last: AprPoint | None, until: int
) -> list[tuple[int, Decimal]]:
    """The settled hours' lending rates (an annual fraction, OKX's) as percent, where they change."""
    mh = t.market_hour
    query = sa.select(mh.c.hour, mh.c.lender_rate).where(mh.c.ccy == product.coin, mh.c.hour <= until)
    if last is not None:
        query = query.where(mh.c.hour > last.ts)
    moves, apr = [], None if last is None else last.apr
    for hour, rate in conn.execute(query.order_by(mh.c.hour)):
        percent = (rate * 100).normalize()
        if percent != apr:
            moves.append((int(hour), percent))
            apr = percent
    return moves


def _walk_moves(product: Product, last: AprPoint, until: int) -> list[tuple[int, Decimal]]:
    """The walk's moves at each hour start after `last` up to `until`."""
    walk = product.walk
    assert walk is not None
    moves, apr = [], last.apr
    for hour in range(floor_hour(last.ts) + HOUR_MS, until + 1, HOUR_MS):
        apr = walk_step(walk.seed, product.id, hour, apr, walk.low, walk.high, walk.step)
        moves.append((hour, apr))
    return moves


def catch_up_all(uow: UnitOfWork) -> int:
    """Every `market` or `simulated` product's APR, caught up to the business clock; how many
    moves were recorded."""
    p = t.product
    recorded = 0
    with uow:
        now = uow.now()
        ids = uow.conn.execute(
            sa.select(p.c.id).where(p.c.apr_source.in_((AprSource.MARKET.value, AprSource.SIMULATED.value)))
        ).scalars()
        for product_id in list(ids):
            recorded += catch_up(uow.conn, load_product(uow.conn, product_id), now)
        uow.commit()
    return recorded
