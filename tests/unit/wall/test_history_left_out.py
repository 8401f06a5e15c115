"""The wall names the former units a restated history leaves out (review 59): from the
/v1/kpis/history answer's ``left_out``, by code and by the name of their era, on the unit
page and under the trend, in both languages."""

from __future__ import annotations

import json
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from services.common.unit_info import UnitInfo
from services.common.units import UnitRegistry
from services.wall.history import FormerUnit, History, former_unit
from services.wall.screens import unit_html
from services.wall.settings import Lang
from services.wall.sources import Sources
from services.wall.trend import points_from_json, trend_svg
from services.wall.unitpage import trends
from tests.http_stub import serving
from tests.unit.wall.factories import fig, recent

REGISTRY = UnitRegistry.from_dir()
GIA_SANG = FormerUnit("05461", "Phường Gia Sàng", "Gia Sang Ward")
TODAY = date(2026, 12, 5)
RESTATED = {"day": "2025-06-30", "numerator": 70, "denominator": 100, "restated": True}
NAMES = {"05443": ("Phường Phan Đình Phùng", "Phan Dinh Phung Ward", "commune", "19", "19")}


def _answer(**extra: Any) -> dict[str, Any]:
    return {"unit": "05443", "era": "2025", "items": [RESTATED], **extra}


def test_the_answers_left_out_units_are_named_as_their_era_named_them() -> None:
    body = _answer(restated=True, restated_from=["05437", "05443"], left_out=["05461"])
    history = History.from_json(body, lambda code: former_unit(REGISTRY, code))
    assert history.items == (RESTATED,)
    assert history.restated_from == ("05437", "05443")
    assert history.left_out == (GIA_SANG,)  # the 2024 ward, not a unit of today
    assert GIA_SANG.label("vi") == "05461 Phường Gia Sàng"
    assert GIA_SANG.label("en") == "05461 Gia Sang Ward"


def test_a_code_the_wall_does_not_know_is_named_by_its_code() -> None:
    unknown = former_unit(REGISTRY, "99999")
    assert unknown.label("vi") == unknown.label("en") == "99999"


def test_an_answer_without_left_out_leaves_nothing_out() -> None:
    history = History.from_json(_answer(), lambda code: former_unit(REGISTRY, code))
    assert history.left_out == () and history.restated_from == ()


def _page(lang: Lang, left_out: tuple[FormerUnit, ...], kpis: int = 1) -> str:
    figures = [
        fig("05443", 9, 10, kpi=f"k{i}", names=NAMES, last_event=recent(1)) for i in range(kpis)
    ]
    found = [trends(f.kpi, [RESTATED], TODAY, left_out) for f in figures]
    return unit_html(lang, _info(), figures, found)


def _info() -> UnitInfo:
    return UnitInfo(
        "05443", "Phường Phan Đình Phùng", "Phan Dinh Phung Ward", "commune", "19", "19"
    )


def test_the_unit_page_names_the_left_out_former_unit_once_in_both_languages() -> None:
    vi = _page("vi", (GIA_SANG,), kpis=3)
    assert "tính lại" in vi and vi.count("05461 Phường Gia Sàng") == 1
    assert "chỉ sáp nhập một phần" in vi
    en = _page("en", (GIA_SANG,))
    assert "05461 Gia Sang Ward" in en and "only partly merged" in en


def test_a_unit_whose_predecessors_all_merged_whole_has_the_plain_note() -> None:
    vi = _page("vi", ())
    assert "tính lại" in vi and "không gồm" not in vi


def test_a_unit_page_with_nothing_restated_names_nothing() -> None:
    recent_day = {**RESTATED, "day": (TODAY - timedelta(days=1)).isoformat(), "restated": False}
    figures = [fig("05443", 9, 10, names=NAMES, last_event=recent(1))]
    # Nothing restated in what is shown: no note at all, left-out units or not.
    found = [trends("document_signing", [recent_day], date(2028, 1, 5), (GIA_SANG,))]
    page = unit_html("vi", _info(), figures, found)
    assert "tính lại" not in page and "05461" not in page


def test_the_trend_caption_names_the_left_out_former_units() -> None:
    points = points_from_json([RESTATED])
    vi = trend_svg("vi", "Phường Phan Đình Phùng", points, 9500, (GIA_SANG,))
    assert "05461 Phường Gia Sàng" in vi
    en = trend_svg("en", "Phan Dinh Phung Ward", points, 9500, (GIA_SANG,))
    assert "05461 Gia Sang Ward" in en
    # Not restated: the caption names nothing, whatever the answer leaves out.
    plain = trend_svg("en", "x", points_from_json([{**RESTATED, "restated": False}]), None,
                      (GIA_SANG,))  # fmt: skip
    assert "05461" not in plain


class _Worker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = json.dumps(_answer(restated=True, restated_from=["05437"], left_out=["05461"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data.encode())))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args: Any) -> None:
        pass


async def test_sources_carry_left_out_through_named_by_the_registry_given() -> None:
    with serving(_Worker) as base:
        sources = Sources([base], "", 5.0, registry=REGISTRY)
        try:
            history = await sources.history("05443", "document_signing", 30)
        finally:
            await sources.aclose()
    assert history.left_out == (GIA_SANG,) and history.restated_from == ("05437",)
    assert [i["day"] for i in history.items] == ["2025-06-30"]


class _Hub:
    def __init__(self, history: History) -> None:
        self.sources = self
        self.history_answer = history

    async def history(self, unit: str, kpi: str, days: int) -> History:
        return self.history_answer


async def test_the_wall_pages_trend_names_them_too() -> None:
    from services.common.calendar import WorkingCalendar
    from services.wall.overview import build_overview
    from services.wall.settings import WallSettings
    from services.wall.views import PageQuery, WallViews
    from tests.unit.wall.factories import NOW, snapshot

    hub = _Hub(History((RESTATED,), ("05437",), (GIA_SANG,)))
    views = WallViews(WallSettings(), hub, WorkingCalendar())  # type: ignore[arg-type]
    figures = [fig(u, 9, 10, names={**NAMES, "19": ("Thái Nguyên", "Thai Nguyen", "province",
                                                   None, "19")}, last_event=recent(1))
               for u in ("19", "05443")]  # fmt: skip
    ov = build_overview(snapshot(figures), "19", "05443", NOW, 30)
    html = await views.trend_html(PageQuery("vi", "19", "05443", "document_signing"), ov)
    assert "05461 Phường Gia Sàng" in html
