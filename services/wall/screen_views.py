"""The wall's screens over HTTP: province overview, rankings, unit page, kiosk rotation.

/wall/province?province=38, /wall/rankings?province=38&key=score|<kpi>&level=&page=,
/wall/unit?unit=404, /wall/kiosk?provinces=19,38&screens=province,rankings&every=30.
Each answers a whole page that fits 1920×1080 (:mod:`services.wall.screens`) from the
hub's latest snapshot; the unit page also reads /v1/kpis/history.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from html import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.figures import Figure
from services.common.figures_client import FetchError
from services.common.scorecard import Scorecard
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.board import build_board, provinces_of, this_month
from services.wall.hub import Hub
from services.wall.i18n import LANGS, text
from services.wall.kiosk import parse_kiosk, position
from services.wall.limits import Busy, Limits
from services.wall.overview import Silence
from services.wall.rankings import SCORE, levels_of, rank_kpi, rank_score
from services.wall.screens import (
    Refresh,
    board_html,
    kiosk_footer,
    rankings_html,
    screen_page,
    screen_url,
    unit_html,
)
from services.wall.settings import Lang
from services.wall.snapshot import Snapshot
from services.wall.unitpage import UnitTrends, history_days, trends

_CODE = re.compile(r"[0-9A-Za-z._-]{1,64}")
REFRESH_S = 30
"""A screen left open (not in a kiosk) reloads itself this often."""


def _now() -> datetime:
    return datetime.now(UTC)


def _lang(query: Mapping[str, str], default: Lang) -> Lang:
    asked = query.get("lang")
    return next((lang for lang in LANGS if lang == asked), default)


def _code(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    return value if value and _CODE.fullmatch(value) else None


def _html(body: str) -> Response:
    return Response(
        body.encode(),
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


class ScreenViews:
    """The screens' handlers, sharing the wall's hub (its snapshot and its sources)."""

    def __init__(
        self,
        hub: Hub,
        default_lang: Lang,
        card: Scorecard | None = None,
        silence: Silence | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.hub = hub
        self.default_lang = default_lang
        self.card = card or Scorecard.load()
        self.silence = silence
        self.limits = limits or Limits.build()

    def routes(self) -> list[Route]:
        return [
            Route("/wall/province", self.province),
            Route("/wall/rankings", self.rankings),
            Route("/wall/unit", self.unit),
            Route("/wall/kiosk", self.kiosk),
        ]

    # ------------------------------------------------------------ pages

    async def province(self, request: Request) -> Response:
        q = request.query_params
        lang = _lang(q, self.default_lang)
        snap = await self.hub.current()
        code = _code(q, "province") or _first_province(snap)
        again = Refresh(REFRESH_S, screen_url("province", lang, province=code))
        return _html(self._province(lang, snap, code, again))

    async def rankings(self, request: Request) -> Response:
        q = request.query_params
        lang = _lang(q, self.default_lang)
        snap = await self.hub.current()
        code = _code(q, "province") or _first_province(snap)
        again = Refresh(REFRESH_S, f"{request.url.path}?{request.url.query}")
        key, level, page = _code(q, "key"), _code(q, "level"), _page(q.get("page"))
        return _html(self._rankings(lang, snap, code, key, level, page, again))

    async def unit(self, request: Request) -> Response:
        q = request.query_params
        lang = _lang(q, self.default_lang)
        snap = await self.hub.current()
        code = _code(q, "unit") or _first_province(snap)
        again = Refresh(REFRESH_S, screen_url("unit", lang, unit=code))
        today = sorted(
            (f for f in snap.figures if f.unit == code and f.window == "day"),
            key=lambda f: f.kpi,
        )
        if code is None or not today:
            return _html(self._empty(lang, snap, "unit", again))
        day = _now().astimezone(VN_TZ).date()
        found = await asyncio.gather(*(self._trends(code, f.kpi, day) for f in today))
        first = today[0]
        name = (first.unit_name_en if lang == "en" else first.unit_name) or code
        body = unit_html(lang, _info(first), today, found)
        title = text(lang, "unit_title", unit=name)
        return _html(
            screen_page(lang, "unit", title, body, data_time=snap.data_time, stale=snap.stale,
                        refresh=again)
        )  # fmt: skip

    async def kiosk(self, request: Request) -> Response:
        q = request.query_params
        snap = await self.hub.current()
        known = [p.code for p in provinces_of(snap.figures)]
        kiosk = parse_kiosk(q, known, self.default_lang)
        index = position(q)
        stop = kiosk.stop(index)
        lang = _lang({"lang": kiosk.lang}, self.default_lang)
        if stop is None:
            return _html(self._empty(lang, snap, "kiosk", Refresh(kiosk.every_s, kiosk.url(0))))
        footer = kiosk_footer(lang, stop.index, len(kiosk.stops), kiosk.every_s)
        following = Refresh(kiosk.every_s, kiosk.url(stop.index + 1), stop.index, footer)
        if stop.screen == "rankings":
            page = self._rankings(lang, snap, stop.province, None, None, 1, following)
        else:
            page = self._province(lang, snap, stop.province, following)
        return _html(page)

    # ------------------------------------------------------------ pieces

    def _province(self, lang: Lang, snap: Snapshot, code: str | None, then: Refresh) -> str:
        board = build_board(self.card, snap, code, _now()) if code else None
        if board is None:
            return self._empty(lang, snap, "province", then)
        name = (board.province.name_en if lang == "en" else board.province.name) or code
        return screen_page(lang, "province", name or "", board_html(lang, board),
                           data_time=snap.data_time, stale=snap.stale, refresh=then)  # fmt: skip

    def _rankings(
        self, lang: Lang, snap: Snapshot, code: str | None, key: str | None,
        level: str | None, page: int, then: Refresh,
    ) -> str:  # fmt: skip
        levels = levels_of(snap.figures, code) if code else []
        if code is None or not levels:
            return self._empty(lang, snap, "rankings", then)
        level = level if level in levels else levels[0]
        kpis = sorted({(f.kpi, f.kpi_name_en if lang == "en" else f.kpi_name_vi)
                       for f in snap.figures if f.province == code})  # fmt: skip
        keys = [(SCORE, text(lang, "by_score")), *kpis]
        if key in {k for k, _ in kpis}:
            ranking = rank_kpi(snap.figures, key or "", code, level, "month")
        else:
            ranking = rank_score(self.card, snap.figures, code, level, this_month(_now()))
        key_name = dict(keys).get(ranking.key, ranking.key)
        plural = text(lang, f"level_{level}_plural") if level in _PLURALS else level
        province = next((p for p in provinces_of(snap.figures) if p.code == code), None)
        where = (province.name_en if lang == "en" else province.name) if province else code
        title = f"{where} — " + text(lang, "rankings_title", level=plural, what=key_name)
        # Ranked by a KPI: silent in its family (the pager's rule); by score: any family.
        kpi = None if ranking.key == SCORE else ranking.key
        silent = self.silence.units(snap, _now(), kpi) if self.silence else frozenset()
        body = rankings_html(lang, ranking, keys, page, silent)
        return screen_page(lang, "rankings", title, body, data_time=snap.data_time,
                           stale=snap.stale, refresh=then)  # fmt: skip

    def _empty(self, lang: Lang, snap: Snapshot, screen: str, then: Refresh) -> str:
        body = f'<p class="empty">{escape(text(lang, "kiosk_empty"))}</p>'
        return screen_page(lang, screen, text(lang, "title"), body, data_time=snap.data_time,
                           stale=snap.stale, refresh=then)  # fmt: skip

    async def _trends(self, unit: str, kpi: str, today: date) -> UnitTrends | None:
        days = history_days(today)
        try:
            # Shared and bounded: a kiosk or a reload loop on one unit reads each KPI's
            # two years once, not once per load (review 55).
            history = await self.limits.histories.get(
                (unit, kpi, days), lambda: self.hub.sources.history(unit, kpi, days)
            )
            return trends(kpi, history.items, today, history.left_out)
        except (Busy, FetchError, KeyError, TypeError, ValueError):
            return None


_PLURALS = ("commune", "district", "department")


def _first_province(snap: Snapshot) -> str | None:
    provinces = provinces_of(snap.figures)
    return provinces[0].code if provinces else None


def _page(value: str | None) -> int:
    try:
        return max(int(value or 1), 1)
    except ValueError:
        return 1


def _info(f: Figure) -> UnitInfo:
    return UnitInfo(f.unit, f.unit_name, f.unit_name_en, f.level, f.province, f.parent)
