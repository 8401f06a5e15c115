"""The alerts HTTP application: the API, health and the service's own metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerts.api import routes
from services.alerts.runbooks import RUNBOOKS_PATH
from services.alerts.runbooks import page as runbook_page
from services.alerts.service import AlertsService

__all__ = ["AlertsService", "create_app"]


def create_app(service: AlertsService, *, run_loops: bool = True) -> Starlette:
    async def healthz(_: Request) -> Response:
        # 200 for a standby too: it is healthy, waiting for the lock (a restart would not
        # help, and the container's healthcheck must not kill it); the role says which.
        return JSONResponse({"status": "ok", "role": service.role})

    async def readyz(_: Request) -> Response:
        state = service.state
        database = await state.database_ok()
        body = {
            "role": service.role,
            "database": database,
            "state_loaded": state.loaded.is_set(),
            "journal_backlog": len(state.journal),
        }
        ready = service.role == "active" and database and state.loaded.is_set()
        return JSONResponse(body, status_code=200 if ready else 503)

    async def runbooks(_: Request) -> Response:
        # What each alert's ``runbook`` link opens (services/alerts/runbooks.py): public,
        # as the docs are; no figure or person in it.
        return Response(runbook_page(), media_type="text/html; charset=utf-8")

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if run_loops:
            service.start_loops()
        try:
            yield
        finally:
            await service.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route(RUNBOOKS_PATH, runbooks),
            *routes(service),
        ],
        lifespan=lifespan,
    )
