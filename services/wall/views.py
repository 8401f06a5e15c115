"""The wall's HTTP views on the metrics worker's web server (faust's aiohttp driver).

/wall (the page), /wall/static/<file>, /wall/api/overview (the drill-down data as
JSON), /wall/api/trend, and /wall/stream (server-sent events: ``overview`` when
the figures change, ``heartbeat`` every few seconds so the page can tell a quiet
province from a dead connection).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from aiohttp import web as aioweb

from services.common.calendar import WorkingCalendar
from services.common.figures_client import FetchError
from services.metrics.wall.api import overview_json
from services.metrics.wall.hub import Hub
from services.metrics.wall.i18n import LANGS
from services.metrics.wall.overview import Overview, build_overview
from services.metrics.wall.render import overview_html, page_html, sources_json, trend_section
from services.metrics.wall.settings import Lang, WallSettings
from services.metrics.wall.trend import TrendPoint, points_from_json

STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_CODE = re.compile(r"[0-9A-Za-z._-]{1,32}")


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What a URL asks for; anything malformed is ignored rather than echoed."""

    lang: Lang
    province: str | None
    unit: str | None
    kpi: str | None

    @classmethod
    def parse(cls, query: Mapping[str, str], default_lang: Lang) -> PageQuery:
        def code(name: str) -> str | None:
            value = query.get(name)
            return value if value and _CODE.fullmatch(value) else None

        lang = query.get("lang")
        chosen: Lang = default_lang
        for known in LANGS:
            if lang == known:
                chosen = known
        return cls(chosen, code("province"), code("unit"), code("kpi"))


def _now() -> datetime:
    return datetime.now(UTC)


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    # One JSON line per event: data never contains a raw newline.
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class WallViews:
    """The handlers, sharing one hub; registered on a Faust app by :func:`register`."""

    def __init__(self, settings: WallSettings, hub: Hub, calendar: WorkingCalendar) -> None:
        self.settings = settings
        self.hub = hub
        self.calendar = calendar
        self.static = {
            p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
            for p in sorted(STATIC_DIR.iterdir())
            if p.suffix in STATIC_TYPES
        }

    async def overview(self, q: PageQuery) -> Overview:
        snapshot = await self.hub.current()
        return build_overview(
            snapshot,
            q.province,
            q.unit,
            _now(),
            self.settings.wall_silence_minutes,
            self.calendar,
        )

    async def trend_points(self, unit: str, kpi: str) -> list[TrendPoint] | None:
        try:
            items = await self.hub.sources.history(unit, kpi, self.settings.wall_trend_days)
        except FetchError:
            return None
        try:
            return points_from_json(items)
        except (KeyError, TypeError, ValueError):
            return None

    async def trend_html(self, q: PageQuery, ov: Overview) -> str:
        unit = q.unit or (ov.focus.code if ov.focus else None)
        if unit is None or q.kpi is None:
            return trend_section(q.lang, None, None, ov, [], None, self.settings.wall_trend_days)
        points = await self.trend_points(unit, q.kpi)
        target_bp = next(
            (k.day.target_bp for k in ov.kpis if k.kpi == q.kpi and k.day is not None), None
        )
        days = self.settings.wall_trend_days
        return trend_section(q.lang, unit, q.kpi, ov, points, target_bp, days)

    async def page(self, web: Any, request: Any) -> Any:
        q = PageQuery.parse(request.query, self.settings.wall_lang)
        ov = await self.overview(q)
        html = page_html(
            q.lang,
            ov,
            _now(),
            dict(request.query),
            await self.trend_html(q, ov),
            self.settings.wall_heartbeat_s,
        )
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        return web.bytes(
            html.encode(),
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )

    async def static_file(self, web: Any, request: Any, name: str) -> Any:
        found = self.static.get(name)
        if found is None:
            return web.json({"error": "not found"}, status=404)
        body, content_type = found
        return web.bytes(body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def api_overview(self, web: Any, request: Any) -> Any:
        q = PageQuery.parse(request.query, self.settings.wall_lang)
        return web.json(overview_json(await self.overview(q)))

    async def api_trend(self, web: Any, request: Any) -> Any:
        q = PageQuery.parse(request.query, self.settings.wall_lang)
        if q.unit is None or q.kpi is None:
            return web.json({"error": "unit and kpi are required"}, status=400)
        points = await self.trend_points(q.unit, q.kpi)
        if points is None:
            return web.json({"error": "no metrics worker answered"}, status=503)
        ov = await self.overview(q)
        return web.json(
            {
                "unit": q.unit,
                "kpi": q.kpi,
                "items": [
                    {
                        "day": p.day,
                        "numerator": p.numerator,
                        "denominator": p.denominator,
                        "ratio": p.ratio,
                    }
                    for p in points
                ],
                "html": await self.trend_html(q, ov),
            }
        )

    async def stream(self, web: Any, request: Any) -> Any:
        q = PageQuery.parse(request.query, self.settings.wall_lang)
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        # EventSource reconnects by itself; ask it to retry quickly.
        await response.write(b"retry: 2000\n\n")
        self.hub.subscribe()
        try:
            await self._pump(q, response)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.unsubscribe()
        return response

    async def _pump(self, q: PageQuery, response: aioweb.StreamResponse) -> None:
        sent_html: str | None = None
        version = -1
        while not self.hub.closed:
            ov = await self.overview(q)
            version = self.hub.version
            html = overview_html(q.lang, ov, _now())
            status = {**sources_json(ov, q.lang), "server_time": _now().isoformat()}
            if html != sent_html:
                await response.write(_event("overview", {**status, "html": html}))
                sent_html = html
            else:
                await response.write(_event("heartbeat", status))
            await self.hub.wait_change(version, self.settings.wall_heartbeat_s)


def _handler(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    # faust binds the handler to its View class as ``get``: it must be a plain function
    # (a bound method would receive the View instead of ``web``).
    async def handler(view: Any, request: Any, **match: Any) -> Any:
        return await method(view, request, **match)

    handler.__name__ = method.__name__
    return handler


def register(
    app: faust.App, settings: WallSettings, hub: Hub, calendar: WorkingCalendar
) -> WallViews:
    views = WallViews(settings, hub, calendar)
    routes: dict[str, Callable[..., Awaitable[Any]]] = {
        "/wall": views.page,
        "/wall/": views.page,
        "/wall/static/{name}": views.static_file,
        "/wall/api/overview": views.api_overview,
        "/wall/api/trend": views.api_trend,
        "/wall/stream": views.stream,
    }
    for path, method in routes.items():
        name = "wall" + path.removeprefix("/wall").replace("/", "_").strip("{}")
        app.page(path, name=name)(_handler(method))
    return views
