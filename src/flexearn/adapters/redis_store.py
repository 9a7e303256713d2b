"""Redis as what every API process shares: the rate-limit windows, request weights and the replay memory.

Redis makes the processes agree; it is not something they need in order to answer. Each call
gives up within a fraction of a second and answers None when Redis cannot be reached, and the
caller then decides in its own process. A small circuit breaker leaves Redis alone for a few
seconds after a failure (one probe per retry period, one warning per outage), so an outage costs
a slow request now and then, not one per request; sharing resumes by itself when Redis returns.

Keys start with `flexearn:` and all expire: an idle identity or an old signature vanishes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("flexearn.redis")

PREFIX = "flexearn:"
# Loopback or LAN Redis answers in well under a millisecond: half a second means it is gone (or
# this machine is too loaded to wait for it). Only the requests asking at that moment wait.
TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 3.0
RECONNECT_ON = (redis.ConnectionError,)

# A sliding-window log, atomically: drop the hits older than the window, refuse when `limit`
# remain (a refused request is not counted), else record this hit. The clock is Redis's own
# (TIME), so processes on machines whose clocks differ still share one window.
# KEYS[1]: the window; ARGV: limit, window (µs), this hit's unique member ("": only look, record
# nothing).
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
if ARGV[3] == '' then
    return 1
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 1
"""


# Weights spent in fixed windows (Binance's request weight per minute), atomically: the window is
# the current one of Redis's clock; a spend that would pass `limit` is refused and not counted. One
# key per identity (declared: safe on a cluster), holding "<window number>:<weight used in it>".
# KEYS[1]: the identity's key; ARGV: weight, limit, window (ms). Answers {used, -1} when spent,
# else {used so far, ms left in the window}.
FIXED_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local current = math.floor(now / window)
local left = window - now % window
local used = 0
local kept = redis.call('GET', KEYS[1])
if kept then
    local sep = string.find(kept, ':', 1, true)
    if tonumber(string.sub(kept, 1, sep - 1)) == current then
        used = tonumber(string.sub(kept, sep + 1))
    end
end
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
    return {used, left}
end
used = used + tonumber(ARGV[1])
redis.call('SET', KEYS[1], current .. ':' .. used, 'PX', left + 1000)
return {used, -1}
"""


class Breaker:
    """Whether to try Redis now: always while it answers; once per `retry_seconds` after it failed.

    `may_try` answers the moment the call starts (None: do not call). Only a call that started
    after the last failure can close the breaker: one that was already under way when Redis
    went away may still succeed, and proves nothing about now.
    """

    def __init__(self, url: str, retry_seconds: float = RETRY_SECONDS) -> None:
        self._url, self._retry = url, retry_seconds
        self._down_until: float | None = None
        self._failed_at = 0.0
        self._lock = threading.Lock()  # held for microseconds: safe in the event loop too
        self._now: Callable[[], float] = time.monotonic

    def may_try(self) -> float | None:
        with self._lock:
            now = self._now()
            if self._down_until is None:
                return now
            if now < self._down_until:
                return None
            self._down_until = now + self._retry  # this caller probes; the others wait
            return now

    def succeeded(self, started: float) -> None:
        with self._lock:
            if self._down_until is None or started <= self._failed_at:
                return
            self._down_until = None
        log.info("Redis at %s answers again: rate limits and replay memory are shared again", self._url)

    def failed(self, error: Exception) -> None:
        with self._lock:
            was_up = self._down_until is None
            self._failed_at = self._now()
            self._down_until = self._failed_at + self._retry
        if was_up:
            log.warning(
                "Redis at %s unreachable (%s: %s): rate limits and replay memory are per process "
                "until it answers again (retried every %.0f s)",
                self._url,
                type(error).__name__,
                error,
                self._retry,
            )


class SharedStore:
    """One process's link to Redis: a window check (async, for the event loop) and a claim (sync,
    for the thread pool, where signatures are verified)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.breaker = Breaker(_safe(url))
        options: dict[str, Any] = {
            "socket_timeout": TIMEOUT_SECONDS,
            "socket_connect_timeout": TIMEOUT_SECONDS,
        }
        # One immediate retry on a broken connection, none on a timeout: a pooled connection to a
        # Redis that restarted fails once and reconnects, a Redis that does not answer costs one
        # timeout, not several.
        self._sync = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1, RECONNECT_ON), **options)
        retry = redis.asyncio.retry.Retry(NoBackoff(), 1, RECONNECT_ON)
        self._async_options = {**options, "retry": retry}
        # An asyncio client belongs to the loop it first ran on; a new loop gets a client of its own.
        self._async: tuple[asyncio.AbstractEventLoop, tuple[Any, Any]] | None = None
        self._members = itertools.count()
        self._me = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    async def allow(
        self, bucket: str, who: str, limit: int, window_seconds: float, *, record: bool = True
    ) -> bool | None:
        """Record a hit in the shared window of (bucket, who) if fewer than `limit` are in it (not
        `record`: only say whether one would be); None when Redis cannot say."""
        started = self.breaker.may_try()
        if started is None:
            return None
        script = self._scripts()[0]
        member = f"{self._me}-{next(self._members)}" if record else ""
        key = f"{PREFIX}limit:{bucket}:{who}"
        try:
            async with asyncio.timeout(2 * TIMEOUT_SECONDS):  # connect + answer, at most
                allowed = await script(keys=[key], args=[limit, round(window_seconds * 1e6), member])
        except (redis.RedisError, OSError, TimeoutError) as error:
            self.breaker.failed(error)
            return None
        self.breaker.succeeded(started)
        return bool(allowed)

    async def spend(
        self, bucket: str, who: str, weight: int, limit: int, window_seconds: int
    ) -> tuple[int, float | None] | None:
        """Spend `weight` of (bucket, who)'s `limit` in the current fixed window: the weight used
        with it and None; or, if it would pass the limit, the weight used so far and the seconds
        left in the window. None when Redis cannot say."""
        started = self.breaker.may_try()
        if started is None:
            return None
        key = f"{PREFIX}weight:{bucket}:{who}"
        try:
            async with asyncio.timeout(2 * TIMEOUT_SECONDS):
                script = self._scripts()[1]
                used, left_ms = await script(keys=[key], args=[weight, limit, window_seconds * 1000])
        except (redis.RedisError, OSError, TimeoutError) as error:
            self.breaker.failed(error)
            return None
        self.breaker.succeeded(started)
        return int(used), None if int(left_ms) < 0 else int(left_ms) / 1000

    def claim(self, name: str, ttl_ms: int) -> bool | None:
        """Take `name` for `ttl_ms` (True), or find it already taken (False); None when Redis
        cannot say. SET NX is atomic: of two processes claiming at once, one wins."""
        started = self.breaker.may_try()
        if started is None:
            return None
        try:
            taken = self._sync.set(f"{PREFIX}{name}", 1, nx=True, px=ttl_ms)
        except (redis.RedisError, OSError) as error:
            self.breaker.failed(error)
            return None
        self.breaker.succeeded(started)
        return bool(taken)

    def claim_all(self, ttl_ms_by_name: Mapping[str, int]) -> bool:
        """Claim each name (one round trip); whether Redis took the whole batch."""
        if not ttl_ms_by_name:
            return True
        started = self.breaker.may_try()
        if started is None:
            return False
        try:
            with self._sync.pipeline(transaction=False) as pipe:
                for name, ttl_ms in ttl_ms_by_name.items():
                    pipe.set(f"{PREFIX}{name}", 1, nx=True, px=ttl_ms)
                pipe.execute()
        except (redis.RedisError, OSError) as error:
            self.breaker.failed(error)
            return False
        self.breaker.succeeded(started)
        return True

    def _scripts(self) -> tuple[Any, Any]:
        """The sliding-window and fixed-window scripts, on this event loop's client."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = redis.asyncio.Redis.from_url(self._url, **self._async_options)
            scripts = (client.register_script(SLIDING_WINDOW), client.register_script(FIXED_WINDOW))
            self._async = (loop, scripts)
        return self._async[1]


def _safe(url: str) -> str:
    """The URL without its password, for the logs."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at and credentials else ''}{host}" if sep else url
