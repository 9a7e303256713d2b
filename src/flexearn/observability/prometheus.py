"""The Prometheus metrics themselves; imported only through `metrics.metrics()` (see there why).

Counters and histograms live in this process (or, with PROMETHEUS_MULTIPROC_DIR set, in files
every worker of the server shares). Amounts and rates are not kept here: a collector reads them
from the database at each scrape, so any worker answers the same and a restart loses nothing.
Prometheus samples are floats; the exact decimals stay in the database and the APIs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def multiprocess_active() -> bool:
    """Whether this process writes its samples to the shared directory."""
    return values.ValueClass is not values.MutexValue


class Metrics:
    """Every metric flexearn records as it runs, in one registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "flexearn_http_requests",
            "HTTP requests answered, by façade, endpoint (route template), method, status and "
            "error code (ok when none)",
            ["facade", "endpoint", "method", "status", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "flexearn_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["facade", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "flexearn_rate_limit_refusals",
            "Requests refused by a rate limit (HTTP 429)",
            ["facade", "endpoint"],
            registry=r,
        )
        self.redis_fallbacks = Counter(
            "flexearn_redis_fallbacks",
            "Rate-limit (use=rate_limit) and replay (use=replay) decisions made in one process "
            "alone because Redis (FLEXEARN_REDIS_URL) was unreachable",
            ["use"],
            registry=r,
        )
        self.settlement_runs = Histogram(
            "flexearn_settlement_run_seconds",
            "Duration of one settlement run: every due market hour (kind=market_hour) or catalog "
            "day (kind=catalog_day); divide by flexearn_settled_periods_total for a period's mean",
            ["kind"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.periods = Counter(
            "flexearn_settled_periods", "Periods settled (currency-hours, product-days)", ["kind"], registry=r
        )
        self.period_rows = Histogram(
            "flexearn_settlement_rows",
            "Rows a settled period touched: positions per market hour, holdings per catalog day",
            ["kind"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.settler = Gauge(
            "flexearn_settler",
            "1 while this process holds the settler lease (settles), 0 while it stands by",
            multiprocess_mode="livemax",
            registry=r,
        )


class Stats(Protocol):
    """What the gauges show (`services.stats.Snapshot`): per currency, the amounts named in
    `DatabaseCollector.collect` (None: not known yet), and these times in epoch ms."""

    @property
    def currencies(self) -> Sequence[Any]: ...
    @property
    def business_now(self) -> int: ...
    @property
    def last_green_check(self) -> int | None: ...
    @property
    def open_since(self) -> int | None: ...


class DatabaseCollector(Collector):
    """Gauges computed from the database at scrape time: `read` reads them (`services.stats`)."""

    def __init__(self, read: Callable[[], Stats]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        snapshot = self.read()
        families = {
            "savings": ("flexearn_savings_amount", "Market savings held, per currency"),
            "lent": ("flexearn_savings_lent", "Market savings lent in the current hour"),
            "pending": ("flexearn_savings_pending", "Market savings not lent in the current hour"),
            "interest_paid": ("flexearn_interest_paid", "Market interest paid to lenders, ever"),
            "catalog_held": ("flexearn_catalog_held", "Open catalog holdings, per coin"),
            "catalog_interest_paid": ("flexearn_catalog_interest_paid", "Catalog interest paid, ever"),
            "borrow_rate": ("flexearn_borrow_rate", "Annual borrow rate of the last settled hour"),
            "lending_rate": ("flexearn_lending_rate", "Annual rate an eligible offer earned, last hour"),
            "demand": ("flexearn_borrow_demand", "Borrow demand of the last settled hour"),
            "last_hour": ("flexearn_last_settled_hour_seconds", "Start of the last settled hour (epoch s)"),
        }
        gauges = {key: GaugeMetricFamily(name, doc, labels=["ccy"]) for key, (name, doc) in families.items()}
        for currency in snapshot.currencies:
            for key, gauge in gauges.items():
                value = getattr(currency, key)
                if value is None:
                    continue
                gauge.add_metric([currency.ccy], float(value) / (1000 if key == "last_hour" else 1))
        yield from gauges.values()
        now = GaugeMetricFamily("flexearn_business_time_seconds", "The business clock (epoch s)")
        now.add_metric([], snapshot.business_now / 1000)
        yield now
        if snapshot.last_green_check is not None:  # a checkpoint is written only by a green check
            checked = GaugeMetricFamily(
                "flexearn_ledger_last_green_check_seconds", "When the ledger last checked green (epoch s)"
            )
            checked.add_metric([], snapshot.last_green_check / 1000)
            yield checked
        if snapshot.open_since is not None:  # trading in its currency or product waits meanwhile
            opened = GaugeMetricFamily(
                "flexearn_settlement_open_since_seconds",
                "When the oldest period being settled in ranges was opened (epoch s)",
            )
            opened.add_metric([], snapshot.open_since / 1000)
            yield opened


def render(metrics: Metrics, read: Callable[[], Stats]) -> tuple[bytes, str]:
    """The exposition text: this process's (or every worker's) metrics and the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_active():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(metrics.registry))
    registry.register(DatabaseCollector(read))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
