"""HTTP views of the metrics worker: Prometheus exposition, the JSON API, health."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import faust
from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.common.units import UnitRegistry
from services.metrics import api, store
from services.metrics.figures import Figures
from services.metrics.kpitext import KpiText
from services.metrics.periods import Periods, local_day
from services.metrics.targets import Targets


def _params(request: Any) -> dict[str, list[str]]:
    query = request.query
    return {key: query.getall(key) for key in set(query.keys())}


def register_views(
    app: faust.App,
    registry: CollectorRegistry,
    kpi_text: KpiText,
    *,
    figures: Figures,
    units: UnitRegistry,
    targets: Targets,
    clock: Callable[[], Any],
    pool: Callable[[], Awaitable[asyncpg.Pool]],
    worker_name: str,
) -> None:
    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # Streamed in pieces: a full scrape is ~90 MB of text, which held at once doubled
        # the worker's memory, and rendered at once held the event loop (counting) for
        # seconds. Between pieces the loop runs; the figures were snapshotted first.
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        response = aioweb.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        await response.prepare(request)
        for chunk in kpi_text.chunks():
            await response.write(chunk)
            await asyncio.sleep(0)
        await response.write(generate_latest(registry))
        await response.write_eof()
        return response

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    def partitions() -> list[str]:
        return [f"{t}[{p}]" for t, p in sorted(figures.partitions)]

    @app.page("/v1/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        try:
            query = api.KpiQuery.parse(_params(request), targets.catalogue)
        except api.QueryError as exc:
            return web.json({"title": "bad query", "detail": str(exc)}, status=400)
        periods = Periods.at(clock())
        items = api.kpi_items(query, figures, units, targets, periods)
        return web.json(
            {
                "generated_at": periods.now.isoformat(),
                "worker": worker_name,
                "partitions": partitions(),
                "items": items,
            }
        )

    @app.page("/v1/activity")
    async def activity(web: Any, request: Any) -> Any:
        items = api.activity_items(figures)
        return web.json({"worker": worker_name, "partitions": partitions(), "items": items})

    @app.page("/v1/kpis/history")
    async def history(web: Any, request: Any) -> Any:
        params = request.query
        unit, kpi = params.get("unit"), params.get("kpi")
        if not unit or not kpi:
            detail = "unit and kpi are required"
            return web.json({"title": "bad query", "detail": detail}, status=400)
        try:
            days = int(params.get("days", "30"))
        except ValueError:
            return web.json({"title": "bad query", "detail": "days must be an integer"}, status=400)
        since = local_day(clock()) - timedelta(days=max(days, 1) - 1)
        async with (await pool()).acquire() as conn:
            rows = await store.history(conn, unit, kpi, since)
        return web.json({"unit": unit, "kpi": kpi, "items": api.history_items(rows)})
