"""The wall's HTTP views, as Starlette routes of the wall service.

/wall (the page), /wall/static/<file>, /wall/api/overview (the drill-down data as
JSON), /wall/api/trend, /wall/stream (server-sent events: ``overview`` when
the figures change, ``heartbeat`` every few seconds so the page can tell a quiet
province from a dead connection), and /healthz.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures_client import FetchError
from services.wall.api import overview_json
from services.wall.directory import TodayUnits
from services.wall.history import FormerUnit
from services.wall.hub import Hub
from services.wall.i18n import LANGS
from services.wall.limits import Busy, Limits
from services.wall.overview import Overview, Silence, build_overview
from services.wall.render import overview_html, page_html, sources_json, trend_section
from services.wall.screen_views import ScreenViews
from services.wall.settings import Lang, WallSettings
from services.wall.sse import EventStream
from services.wall.trend import TrendPoint, every_day, points_from_json

STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_CODE = re.compile(r"[0-9A-Za-z._-]{1,32}")
STREAM_RETRY_AFTER_S = 30
"""A refused stream's ``Retry-After``: a page's streams end when its tabs close."""
STREAM_REFUSALS = {
    429: "too many open streams from this address",
    503: "the wall serves as many streams as it can",
}


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
    """The handlers, sharing one hub; :meth:`routes` lists them for the app."""

    def __init__(
        self,
        settings: WallSettings,
        hub: Hub,
        calendar: WorkingCalendar,
        silence: Silence | None = None,
        limits: Limits | None = None,
        today: TodayUnits | None = None,
    ) -> None:
        self.settings = settings
        # Today's units of EGOV_UNITS_DIR (default: the shipped data), for the units that
        # never sent anything (no worker serves a figure of theirs).
        self.today = today
        self.hub = hub
        self.calendar = calendar
        self.limits = limits or Limits.of(settings)
        # The rankings' and files' rule; the overview judges any family, as its table does.
        self.silence = silence or Silence(settings.wall_silence_minutes, calendar)
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
            self.today,
            self.settings.wall_silent_peer_share,
        )

    async def trend_points(self, unit: str, kpi: str) -> list[TrendPoint] | None:
        found = await self._trend(unit, kpi)
        return None if found is None else found[0]

    async def _trend(
        self, unit: str, kpi: str
    ) -> tuple[list[TrendPoint], tuple[FormerUnit, ...]] | None:
        """Every day's point of the last ``wall_trend_days``, and the former units the
        restated ones leave out; None when no worker answered usably."""
        days = self.settings.wall_trend_days
        try:
            history = await self.limits.histories.get(
                (unit, kpi, days), lambda: self.hub.sources.history(unit, kpi, days)
            )
        except (Busy, FetchError):
            return None
        try:
            points = points_from_json(history.items)
        except (KeyError, TypeError, ValueError):
            return None
        today = _now().astimezone(VN_TZ).date()
        return every_day(points, today, self.settings.wall_trend_days), history.left_out

    async def trend_html(self, q: PageQuery, ov: Overview) -> str:
        unit = q.unit or (ov.focus.code if ov.focus else None)
        if unit is None or q.kpi is None:
            return trend_section(q.lang, None, None, ov, [], None, self.settings.wall_trend_days)
        found = await self._trend(unit, q.kpi)
        points, left_out = (None, ()) if found is None else found
        lines = [k for k in ov.kpis if k.kpi == q.kpi]
        day = next((k.day for k in lines if k.day is not None), None)
        target_bp, basis = (day.target_bp, day.target_basis) if day else (None, None)
        # The KPI's minimum volume, from its /v1/kpis item as the table beside judges it
        # (/v1/kpis/history items do not say it); without one, no day is judged.
        shown = next((f for k in lines for f in (k.day, k.month) if f is not None), None)
        min_volume = shown.min_volume if shown else None
        days = self.settings.wall_trend_days
        return trend_section(
            q.lang, unit, q.kpi, ov, points, target_bp, days, basis, left_out, min_volume
        )

    async def page(self, request: Request) -> Response:
        q = PageQuery.parse(request.query_params, self.settings.wall_lang)
        ov = await self.overview(q)
        html = page_html(
            q.lang,
            ov,
            _now(),
            dict(request.query_params),
            await self.trend_html(q, ov),
            self.settings.wall_heartbeat_s,
        )
        return Response(
            html.encode(),
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )

    async def static_file(self, request: Request) -> Response:
        found = self.static.get(request.path_params["name"])
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        body, content_type = found
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def api_overview(self, request: Request) -> Response:
        q = PageQuery.parse(request.query_params, self.settings.wall_lang)
        return JSONResponse(overview_json(await self.overview(q)))

    async def api_trend(self, request: Request) -> Response:
        q = PageQuery.parse(request.query_params, self.settings.wall_lang)
        if q.unit is None or q.kpi is None:
            return JSONResponse({"error": "unit and kpi are required"}, status_code=400)
        points = await self.trend_points(q.unit, q.kpi)
        if points is None:
            return JSONResponse({"error": "no metrics worker answered"}, status_code=503)
        ov = await self.overview(q)
        return JSONResponse(
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

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stream(self, request: Request) -> Response:
        q = PageQuery.parse(request.query_params, self.settings.wall_lang)
        # Each open stream rebuilds and renders its page every heartbeat on the one event
        # loop: bounded per client address and in all (review 55). The page's script
        # reconnects by itself a moment later.
        client = request.client.host if request.client else ""
        refused = self.limits.streams.take(client)
        if refused is not None:
            headers = {"Retry-After": str(STREAM_RETRY_AFTER_S)}
            body = {"error": STREAM_REFUSALS[refused]}
            return JSONResponse(body, status_code=refused, headers=headers)
        return EventStream(self._events(q), on_close=lambda: self.limits.streams.give_back(client))

    async def _events(self, q: PageQuery) -> AsyncGenerator[bytes]:
        # EventSource reconnects by itself; ask it to retry quickly.
        yield b"retry: 2000\n\n"
        self.hub.subscribe()
        try:
            sent_html: str | None = None
            while not self.hub.closed:
                ov = await self.overview(q)
                version = self.hub.version
                html = overview_html(q.lang, ov, _now())
                status = {**sources_json(ov, q.lang), "server_time": _now().isoformat()}
                if html != sent_html:
                    yield _event("overview", {**status, "html": html})
                    sent_html = html
                else:
                    yield _event("heartbeat", status)
                await self.hub.wait_change(version, self.settings.wall_heartbeat_s)
        finally:
            self.hub.unsubscribe()

    def routes(self) -> list[Route]:
        return [
            Route("/wall", self.page),
            Route("/wall/", self.page),
            Route("/wall/static/{name}", self.static_file),
            Route("/wall/api/overview", self.api_overview),
            Route("/wall/api/trend", self.api_trend),
            Route("/wall/stream", self.stream),
            Route("/healthz", self.healthz),
            *ScreenViews(
                self.hub,
                self.settings.wall_lang,
                silence=self.silence,
                limits=self.limits,
            ).routes(),
        ]
