"""Recording metrics, without importing prometheus_client until the first sample.

prometheus_client decides at import whether it runs in multi-process mode (it reads
PROMETHEUS_MULTIPROC_DIR then), and `flexearn serve` only sets that variable once it knows it
starts a server: so nothing imports it before the first metric is recorded or scraped. That
variable is prometheus_client's input; flexearn reads it once, as `Settings.metrics_dir`.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from flexearn.observability.prometheus import Metrics, Stats

MARKET_HOUR, CATALOG_DAY = "market_hour", "catalog_day"


@functools.cache
def metrics() -> Metrics:
    from flexearn.observability import prometheus  # noqa: PLC0415  (see the module docstring)

    return prometheus.Metrics()


def prepare_multiprocess(given: str) -> tuple[str, Path | None]:
    """Make every process of this server share its samples through one directory.

    Uses `given` (`Settings.metrics_dir`) when the operator set one (emptied first: samples of an
    earlier run would add to this one), else a new temporary directory, returned second so the
    caller removes it at exit. The caller hands the directory (first) to prometheus_client, in its
    process and the server's workers, as PROMETHEUS_MULTIPROC_DIR (`Settings.to_env`) before any
    metric is recorded.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before multi-process mode was set up")
    created = None
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        created = Path(tempfile.mkdtemp(prefix="flexearn-metrics-"))
    return given or str(created), created


def remove_multiprocess_dir(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


# HTTP's methods: any other token a client sends is labelled "other" (a label's values must be few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


def observe_request(
    facade: str, endpoint: str, method: str, status: int, code: str | None, seconds: float
) -> None:
    method = method if method in METHODS else "other"
    requests, latency = _request_series(facade, endpoint, method, status, code)
    requests.inc()
    latency.observe(seconds)
    if status == 429:  # Too Many Requests: only the rate limits answer it
        metrics().refusals.labels(facade, endpoint).inc()


@functools.lru_cache(maxsize=4096)  # its labels are bounded: routes, methods, statuses, error codes
def _request_series(
    facade: str, endpoint: str, method: str, status: int, code: str | None
) -> tuple[Any, Any]:
    """A request's counter and latency histogram (their `labels()` lookups cost more than the samples)."""
    m = metrics()
    counter = m.requests.labels(facade, endpoint, method, str(status), code or "ok")
    return counter, m.latency.labels(facade, endpoint)


def observe_redis_fallback(use: str) -> None:
    """A decision (`rate_limit` or `replay`) made in this process alone: Redis was unreachable."""
    metrics().redis_fallbacks.labels(use).inc()


def observe_settlement(kind: str, seconds: float, rows_per_period: Sequence[int]) -> None:
    """One settlement run of `kind` and the rows each period it settled touched."""
    m = metrics()
    m.settlement_runs.labels(kind).observe(seconds)
    m.periods.labels(kind).inc(len(rows_per_period))
    for rows in rows_per_period:
        m.period_rows.labels(kind).observe(rows)


def set_settler(held: bool) -> None:
    """Whether this process holds the settler lease now (services/leader.py)."""
    metrics().settler.set(1 if held else 0)


def serve_metrics(read_stats: Callable[[], Stats], host: str, port: int) -> ThreadingHTTPServer:
    """`GET /metrics` of this process on `host:port`, from a daemon thread: for `flexearn worker`,
    which serves no HTTP otherwise (its settlement metrics and `flexearn_settler` live here);
    `read_stats` reads the database gauges (`services.stats.reader`)."""
    from flexearn.observability import prometheus  # noqa: PLC0415  (see the module docstring)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            try:
                body, content_type = prometheus.render(metrics(), read_stats)
            except sa.exc.SQLAlchemyError:  # the database gauges need it: say so, as /metrics does
                self.send_error(503, "database unavailable")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="flexearn-metrics", daemon=True).start()
    return server
