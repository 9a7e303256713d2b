"""GET /metrics (Prometheus exposition) and GET /healthz (is the database answering?).

Both read the database within an API request's budget but without waiting for a request slot, so
they answer — 503 when the database is unreachable or too slow — while the slots are full.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flexearn.adapters import db
from flexearn.api.admission import Admission
from flexearn.observability.metrics import metrics
from flexearn.services import stats
from flexearn.services.figures import FigureCache

log = logging.getLogger("flexearn.health")


def ops_routes(engine: sa.Engine, admission: Admission, figures: FigureCache | None = None) -> list[Route]:
    read_stats = stats.reader(engine, figures)

    def scrape() -> tuple[bytes, str]:
        from flexearn.observability import prometheus  # noqa: PLC0415  (imported lazily: see metrics)

        return prometheus.render(metrics(), read_stats)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            body, content_type = await admission.unqueued(scrape)
        except Exception as error:
            if not db.unavailable(error):
                raise
            log.warning("metrics: database unavailable: %s", type(error).__name__)
            return Response("database unavailable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=content_type)

    def database_answers() -> None:
        with db.read_only(engine.connect()) as conn:  # never waits for SQLite's write lock
            conn.execute(sa.text("SELECT 1"))

    async def healthz(request: Request) -> Response:
        try:
            await admission.unqueued(database_answers)
        except Exception as error:  # any failure to reach the database is "unavailable"
            log.warning("healthz: database unavailable: %s", type(error).__name__)
            return JSONResponse({"status": "unavailable", "database": type(error).__name__}, 503)
        return JSONResponse({"status": "ok"})

    return [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
