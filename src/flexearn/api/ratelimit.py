"""Request rate limits: a sliding one-window log per (bucket, identity), in process.

Each façade asks `allow(bucket, who, limit, per_seconds)`; a refused request is not counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    def __init__(self) -> None:
        self._now = time.monotonic
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, bucket: str, who: str, limit: int, per_seconds: float = 1.0) -> bool:
        now = self._now()
        key = (bucket, who)
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - per_seconds:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle identities now and then
                self._sweep(now)
            return True

    def _sweep(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - 60]:
            del self._hits[key]
