"""Settings, read from the environment once and passed down (nothing reads os.environ later).

A server's worker processes are fresh interpreters that granian starts with no arguments
(`api.app.factory`): `flexearn serve` and `flexearn demo` hand them the settings they resolved
through their environment, in one step (`Settings.to_env`, which `from_env` reads back as it was).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

DEFAULT_DATABASE_URL = "sqlite:///flexearn.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Seconds the worker sleeps at most between looks at the clock.
    poll_seconds: float = 1.0
    # Fernet key(s) that encrypt API secrets at rest; comma-separated for rotation (first encrypts).
    master_key: str = ""
    # Bearer token(s) of the admin API: `token` or `name:token`, comma-separated (the name is the
    # identity the audit log records; a bare token is "admin"). Required unless `demo`.
    admin_token: str = ""
    # A sandbox: the server may start without an admin token (the admin API is then open).
    demo: bool = False
    # Level of the JSON logs: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    # Backpressure of each API process (see api/admission.py): how many of its requests may be at
    # the database at once; how many seconds a request waits for one of those slots; how many
    # seconds a request's database work may take in all (its statements and lock waits get what is
    # left) before it is answered "service unavailable" (OKX 50001, Bitget 40604; HTTP 503).
    api_db_slots: int = 10
    api_queue_timeout: float = 1.0
    api_timeout: float = 3.0
    # Redis that every API process shares its rate limits and replay memory through (e.g.
    # redis://127.0.0.1:6379/0); empty: each process keeps its own (right for one process).
    redis_url: str = ""
    # Days of history kept (0: forever). Lending history at least 30: OKX's lending-history
    # endpoint promises the last month. Pruned by the settler behind a green ledger checkpoint.
    lending_history_days: int = 30
    rate_history_days: int = 0
    # Addresses or networks of the HTTP proxies in front of the API (comma-separated): from them,
    # the client is taken from X-Forwarded-For (see api/proxy.py); empty: the connecting address.
    trusted_proxies: str = ""
    # Ranges of user ids each period's settlement is shared in (services/settlement/period.py): 1
    # settles a period in one transaction; N > 1 lets the standby workers apply ranges alongside
    # the settler, each range in its own transaction, while trading in that currency waits.
    settlement_ranges: int = 1
    # Currencies' hours (and products' days) the settler settles side by side, each in its own
    # thread, transaction and connection (PostgreSQL; SQLite has one writer, so there they take
    # turns): one's Python work overlaps another's statements. Products of one coin take turns.
    # 2 suits a 2-core machine; more helps while the database has cores to spare.
    settlement_threads: int = 2
    # What one client may make the HTTP server hold (api/limits.py, api/listener.py). The largest
    # request body, in bytes, on every path (façades, admin API, dashboard): a larger one is
    # refused with 413 before authentication, a declared one without reading it, a streamed one as
    # soon as it passes the limit. Seconds a client has to send a request's headers, counted from
    # the connection's opening or the previous answer (so also how long an idle keep-alive
    # connection is kept), and to send its body once the headers are in (else 408). Connections
    # each API process holds at once (more wait in the kernel's listen queue).
    max_body_bytes: int = 65536
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 10000
    # For benchmarks and load tests only: every façade's per-second request limit multiplied by
    # this (the failure throttle on bad signatures is not), so that one load generator on one
    # address can drive a process. Never set in production.
    rate_limit_scale: int = 1
    # Where the processes of one server share their Prometheus samples (PROMETHEUS_MULTIPROC_DIR,
    # prometheus_client's own variable); empty: `flexearn serve` makes a temporary one.
    metrics_dir: str = ""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None
    ) -> Settings:
        """The settings `env` (default: this process's environment) gives, `defaults` filling in
        the variables it does not set."""
        env = {**(defaults or {}), **(os.environ if env is None else env)}
        return cls(
            database_url=env.get("FLEXEARN_DATABASE_URL", DEFAULT_DATABASE_URL),
            poll_seconds=_number(env, "FLEXEARN_POLL_SECONDS", 1.0),
            master_key=env.get("FLEXEARN_MASTER_KEY", ""),
            admin_token=env.get("FLEXEARN_ADMIN_TOKEN", ""),
            demo=env.get("FLEXEARN_DEMO", "") in ("1", "true", "yes"),
            log_level=env.get("FLEXEARN_LOG_LEVEL", "INFO").upper(),
            api_db_slots=_number(env, "FLEXEARN_API_DB_SLOTS", 10),
            api_queue_timeout=_number(env, "FLEXEARN_API_QUEUE_TIMEOUT", 1.0),
            api_timeout=_number(env, "FLEXEARN_API_TIMEOUT", 3.0),
            redis_url=env.get("FLEXEARN_REDIS_URL", ""),
            lending_history_days=_number(env, "FLEXEARN_LENDING_HISTORY_DAYS", 30),
            rate_history_days=_number(env, "FLEXEARN_RATE_HISTORY_DAYS", 0),
            trusted_proxies=env.get("FLEXEARN_TRUSTED_PROXIES", ""),
            settlement_ranges=_ranges(_number(env, "FLEXEARN_SETTLEMENT_RANGES", 1)),
            settlement_threads=_bounded(env, "FLEXEARN_SETTLEMENT_THREADS", 2, 1, 16),
            max_body_bytes=_bounded(env, "FLEXEARN_MAX_BODY_BYTES", 65536, 1024, 64 * 1024 * 1024),
            header_timeout=_bounded(env, "FLEXEARN_HEADER_TIMEOUT", 10.0, 1.0, 3600.0),
            body_timeout=_bounded(env, "FLEXEARN_BODY_TIMEOUT", 10.0, 0.1, 3600.0),
            max_connections=_bounded(env, "FLEXEARN_MAX_CONNECTIONS", 10000, 16, 1_000_000),
            rate_limit_scale=_bounded(env, "FLEXEARN_RATE_LIMIT_SCALE", 1, 1, 1_000_000_000),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR", ""),
        )

    def to_env(self) -> dict[str, str]:
        """The environment `from_env` reads these settings back from: what `serve` and `demo`
        hand to their worker processes (an empty text is left out: it is the default)."""
        variables = {
            "FLEXEARN_DATABASE_URL": self.database_url,
            "FLEXEARN_POLL_SECONDS": repr(self.poll_seconds),
            "FLEXEARN_MASTER_KEY": self.master_key,
            "FLEXEARN_ADMIN_TOKEN": self.admin_token,
            "FLEXEARN_DEMO": "1" if self.demo else "",
            "FLEXEARN_LOG_LEVEL": self.log_level,
            "FLEXEARN_API_DB_SLOTS": str(self.api_db_slots),
            "FLEXEARN_API_QUEUE_TIMEOUT": repr(self.api_queue_timeout),
            "FLEXEARN_API_TIMEOUT": repr(self.api_timeout),
            "FLEXEARN_REDIS_URL": self.redis_url,
            "FLEXEARN_LENDING_HISTORY_DAYS": str(self.lending_history_days),
            "FLEXEARN_RATE_HISTORY_DAYS": str(self.rate_history_days),
            "FLEXEARN_TRUSTED_PROXIES": self.trusted_proxies,
            "FLEXEARN_SETTLEMENT_RANGES": str(self.settlement_ranges),
            "FLEXEARN_SETTLEMENT_THREADS": str(self.settlement_threads),
            "FLEXEARN_MAX_BODY_BYTES": str(self.max_body_bytes),
            "FLEXEARN_HEADER_TIMEOUT": repr(self.header_timeout),
            "FLEXEARN_BODY_TIMEOUT": repr(self.body_timeout),
            "FLEXEARN_MAX_CONNECTIONS": str(self.max_connections),
            "FLEXEARN_RATE_LIMIT_SCALE": str(self.rate_limit_scale),
            "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
        }
        return {name: text for name, text in variables.items() if text}


MAX_SETTLEMENT_RANGES = 1024


def _ranges(ranges: int) -> int:
    if not 1 <= ranges <= MAX_SETTLEMENT_RANGES:
        raise ValueError(f"FLEXEARN_SETTLEMENT_RANGES: 1 to {MAX_SETTLEMENT_RANGES}, not {ranges}")
    return ranges


_INTEGER = re.compile(r"[0-9]{1,12}")
_DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?")
Number = TypeVar("Number", int, float)


def _number(env: Mapping[str, str], name: str, default: Number) -> Number:
    """`name` read as the type of `default` (Python's own grammar), or an error naming it."""
    text = env.get(name)
    if text is None:
        return default
    try:
        return type(default)(text)
    except ValueError:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise ValueError(f"{name}: {kind}, not {text!r}") from None


def _bounded(env: Mapping[str, str], name: str, default: Number, low: Number, high: Number) -> Number:
    """`name` read as the type of `default`, from ASCII digits (and a decimal point for a float;
    no sign, exponent, space or `_`), with low ≤ value ≤ high."""
    text = env.get(name)
    if text is None:
        return default
    grammar = _INTEGER if isinstance(default, int) else _DECIMAL
    if not grammar.fullmatch(text):
        raise ValueError(f"{name}: a number from {low} to {high}, not {text!r}")
    value = type(default)(text)
    if not low <= value <= high:
        raise ValueError(f"{name}: {low} to {high}, not {text}")
    return value
