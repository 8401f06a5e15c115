"""Review 48 (fixed 2026-12-05): what the IOC wall (/wall) showed wrong.

- an acknowledged alert, read as the wall reads it (without a token, the alerts API
  hides who acknowledged it: ``acked_by`` null, ``acked_at`` set), is sorted among the
  unacknowledged ones on /wall (services/wall/overview.py ``_alerts_of``);
- the /wall trend joins the points across a day the history omits ("days without
  events are absent", docs/metrics-api.md) instead of drawing a gap
  (services/wall/trend.py ``_line`` / services/wall/views.py ``trend_points``);
- two units exactly as far below their targets are ordered by a float difference, not
  by the volume tie-break (services/wall/model.py ``worst_first_key``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.common.calendar import VN_TZ, WorkingCalendar
from services.wall.history import History
from services.wall.i18n import fmt_since
from services.wall.model import alert_from_json
from services.wall.overview import build_overview
from services.wall.render import overview_html
from services.wall.screens import Refresh, screen_page
from services.wall.settings import WallSettings
from services.wall.views import PageQuery, WallViews
from tests.unit.wall.factories import NOW, fig, recent, snapshot


def _api_alert(unit: str, severity: str, acked: bool) -> dict[str, Any]:
    """An item of GET /v1/alerts as the alerts service answers a reader without a token
    (services/alerts/api.py ``_shown``; services/alerts/store.py ``alert_json``)."""
    return {
        "id": f"a-{unit}",
        "condition": "KpiBelowTarget",
        "kpi": "document_signing",
        "unit": unit,
        "window": "day",
        "state": "firing",
        "severity": severity,
        "province": "19",
        "labels": {},
        "annotations": {},
        "fired_at": recent(30).isoformat(),
        "acked_at": recent(10).isoformat() if acked else None,
        "acked_by": None,  # hidden: the wall reads without an operator token
        "names_hidden": True,
    }


def _province_19() -> list:
    return [
        fig("19", 180, 200, last_event=recent(1)),
        fig("01843", 60, 100, last_event=recent(1)),
        fig("01850", 60, 100, last_event=recent(1)),
    ]


def test_an_acknowledged_alert_is_listed_after_the_unacknowledged_on_the_wall() -> None:
    alerts = [
        alert_from_json(_api_alert("01843", "critical", acked=True)),
        alert_from_json(_api_alert("01850", "warning", acked=False)),
    ]
    ov = build_overview(snapshot(_province_19(), alerts=alerts), "19", None, NOW, 30)
    assert ov.alerts is not None
    # docs/wall.md: "Open alerts ... unacknowledged and critical first" (the province
    # screen's board.open_alerts already reads acknowledged_at too).
    assert [a.unit for a in ov.alerts] == ["01850", "01843"]
    html = overview_html("en", ov, NOW)
    assert html.index('data-alert="a-01850"') < html.index('data-alert="a-01843"')


class _History:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def history(self, unit: str, kpi: str, days: int) -> History:
        return History(tuple(self.items))


class _Hub:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.sources = _History(items)


async def test_the_wall_trend_leaves_a_gap_where_the_history_has_no_day() -> None:
    day = NOW.date()
    # As /v1/kpis/history answers: 19, 20, (21 absent: no event that day), 22, 23 Nov.
    items = [
        {"day": (day - timedelta(days=back)).isoformat(), "numerator": n, "denominator": 100,
         "ratio": n / 100}
        for back, n in ((4, 99), (3, 98), (1, 97), (0, 96))
    ]  # fmt: skip
    views = WallViews(WallSettings(), _Hub(items), WorkingCalendar())  # type: ignore[arg-type]
    ov = build_overview(snapshot(_province_19()), "19", "01843", NOW, 30)
    q = PageQuery("en", "19", "01843", "document_signing")
    html = await views.trend_html(q, ov)
    # docs/wall.md: "days without data as gaps": two runs, 19-20 and 22-23 November.
    assert html.count("<polyline") == 2


def test_units_equally_far_below_target_are_ordered_by_volume() -> None:
    figures = [
        fig("19", 180, 200, last_event=recent(1)),
        # Both exactly 10 points under their target: 80 % of 90 %, 70 % of 80 %.
        fig("01843", 800, 1000, target=0.9, last_event=recent(1)),
        fig("01850", 70, 100, target=0.8, last_event=recent(1)),
    ]
    ov = build_overview(snapshot(figures), "19", None, NOW, 30)
    # A tie on the gap: the larger volume first (the key's own tie-break).
    assert [f.unit for f in ov.below] == ["01843", "01850"]


def test_figures_stale_since_yesterday_say_which_day() -> None:
    """The status line after midnight: "since 23:58:00" read as tonight's figures."""
    now = datetime(2026, 11, 24, 0, 20, tzinfo=VN_TZ)
    tonight = datetime(2026, 11, 24, 0, 5, tzinfo=VN_TZ)
    last_night = datetime(2026, 11, 23, 23, 58, tzinfo=VN_TZ)
    assert fmt_since(tonight, "en", now) == "00:05:00"
    assert fmt_since(last_night, "vi", now) == "23/11/2026 23:58"
    assert fmt_since(last_night, "en", now) == "23 Nov 2026 23:58"
    assert fmt_since(None, "en", now) == "–"


def test_a_screen_that_never_read_figures_says_so() -> None:
    refresh = Refresh(every_s=30, url="/wall/screens/province?province=19", stop=None)
    page = screen_page("en", "province", "Thái Nguyên", "", data_time=None, stale=True,
                       refresh=refresh)  # fmt: skip
    assert "No figures could be loaded yet." in page
    assert "since –" not in page
