"""Request rate limits: a sliding one-window log per (bucket, identity).

Each façade asks `await allow(bucket, who, limit, per_seconds)`; a refused request is not counted;
`record=False` only asks whether a hit would be allowed (for limits on failures, counted apart).
`RateLimiter` keeps the windows in this process: right for one process, but N processes would
each allow the limit (N times it in all). `SharedRateLimiter` keeps them in Redis, so every
process counts against one window, and falls back to its own windows while Redis is unreachable.

`spend(bucket, who, weight, limit, window)` counts weights in fixed windows instead (Binance's
request weight per minute, `api/binance/weights.py`), shared the same way.

`allow` and `spend` are coroutines because the shared check is a network round trip made in the event loop
(redis.asyncio): a blocking call there would stall every request of the process, and the thread
pool is where the database handlers wait, which is exactly when limits must still answer fast.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from flexearn.adapters.redis_store import SharedStore
from flexearn.observability.metrics import observe_redis_fallback


class RateLimiter:
    """The limits of this process alone, in memory."""

    def __init__(self) -> None:
        self._now = time.monotonic
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._wall = time.time  # fixed windows start on the clock's minutes, as Binance's do
        self._spent: dict[str, tuple[int, dict[str, int]]] = {}  # bucket → (window, used by who)

    async def spend(
        self, bucket: str, who: str, weight: int, limit: int, window_seconds: int
    ) -> tuple[int, float | None]:
        """Spend `weight` of `who`'s `limit` in the bucket's current fixed window: the weight used
        with it and None; or, if it would pass the limit (then nothing is spent), the weight used
        so far and the seconds left in the window."""
        return self.spend_here(bucket, who, weight, limit, window_seconds)

    def spend_here(
        self, bucket: str, who: str, weight: int, limit: int, window_seconds: int
    ) -> tuple[int, float | None]:
        now = self._wall()
        window = int(now // window_seconds)
        with self._lock:
            kept = self._spent.get(bucket)
            if kept is None or kept[0] != window:  # a new window: every identity starts afresh
                kept = self._spent[bucket] = (window, {})
            used = kept[1].get(who, 0)
            if used + weight > limit:
                return used, window_seconds - now % window_seconds
            kept[1][who] = used + weight
            return used + weight, None

    async def allow(
        self, bucket: str, who: str, limit: int, per_seconds: float = 1.0, *, record: bool = True
    ) -> bool:
        return self.allow_here(bucket, who, limit, per_seconds, record=record)

    def allow_here(
        self, bucket: str, who: str, limit: int, per_seconds: float = 1.0, *, record: bool = True
    ) -> bool:
        now = self._now()
        key = (bucket, who)
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if not record:
                    return True
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - per_seconds:
                hits.popleft()
            if len(hits) >= limit:
                return False
            if not record:
                return True
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle identities now and then
                self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - 60]:
            del self._hits[key]


class SharedRateLimiter(RateLimiter):
    """The limits of every process sharing `store`; this process's own while Redis is away."""

    def __init__(self, store: SharedStore) -> None:
        super().__init__()
        self.store = store

    async def allow(
        self, bucket: str, who: str, limit: int, per_seconds: float = 1.0, *, record: bool = True
    ) -> bool:
        shared = await self.store.allow(bucket, who, limit, per_seconds, record=record)
        if shared is None:
            observe_redis_fallback("rate_limit")
            return self.allow_here(bucket, who, limit, per_seconds, record=record)
        return shared

    async def spend(
        self, bucket: str, who: str, weight: int, limit: int, window_seconds: int
    ) -> tuple[int, float | None]:
        shared = await self.store.spend(bucket, who, weight, limit, window_seconds)
        if shared is None:
            observe_redis_fallback("rate_limit")
            return self.spend_here(bucket, who, weight, limit, window_seconds)
        return shared
