"""GET /metrics (Prometheus exposition) and GET /healthz (is the database answering?)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flexearn.observability.metrics import metrics

log = logging.getLogger("flexearn.health")


def ops_routes(engine: sa.Engine) -> list[Route]:
    def scrape() -> tuple[bytes, str]:
        from flexearn.observability import prometheus  # noqa: PLC0415  (imported lazily: see metrics)

        return prometheus.render(metrics(), engine)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            body, content_type = await run_in_threadpool(scrape)
        except sa.exc.OperationalError:
            log.exception("metrics: database unavailable")
            return Response("database unavailable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=content_type)

    def database_answers() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(database_answers)
        except Exception as error:  # any failure to reach the database is "unavailable"
            log.warning("healthz: database unavailable: %s", type(error).__name__)
            return JSONResponse({"status": "unavailable", "database": type(error).__name__}, 503)
        return JSONResponse({"status": "ok"})

    return [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
