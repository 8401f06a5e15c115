"""The alerts HTTP application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerts.settings import AlertsSettings
from services.common.db import create_pool, migrate


class AlertsService:
    """Holds the database pool and the service's own metrics registry."""

    def __init__(self, settings: AlertsSettings) -> None:
        self.settings = settings
        self.metrics_registry = CollectorRegistry()
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await create_pool(self.settings.database_url.get_secret_value())
        async with self.pool.acquire() as conn:
            await migrate(conn)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def database_ok(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(3):
                await self.pool.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        return True


def create_app(service: AlertsService) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        database = await service.database_ok()
        return JSONResponse({"database": database}, status_code=200 if database else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
