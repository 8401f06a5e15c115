"""Review 88: "percentages shown wrong": one figure, every surface.

Checked against /work/shared/DOMAIN.md ("Small volumes lie", "Displaying a rate"): the
shared formatter (services/common/rates.py) is used by the wall, the screens, the files,
/v1/kpis and the alert texts, so the digits agree everywhere; what disagrees is *what is
said about* the figure. Each defect is one strict xfail below, driving the real rendering
functions with figures as the metrics worker serves them (/v1/kpis items, /v1/kpis/history
items) and the alerts service's real evaluation:

1. The /wall trend draws a day too small to judge (2 of 3 signed, ``min_volume`` 20) as a
   red "below target" square, while the wall's own table shows the same counts as
   "Too few to judge": services/wall/trend.py:171 (``trend_svg`` judges each day with
   ``meets`` alone; /v1/kpis/history items carry no ``min_volume``,
   services/metrics/history.py:142-151, and services/wall/views.py:144-155 passes none).
2. The unit screen's 14-day and 13-month sparklines mark such a day (or month) with a
   "below" dot, beside a period cell of the same page that says "Too few to judge":
   services/wall/screens.py:603 (``spark`` judges with ``meets`` alone, no volume).
3. A KpiBudgetBurn resolution quotes the hour's burn rounded *up* to the threshold: 281
   of 1,000 against 95 % misses 14.38 times the allowance, shown "gấp 14,4 lần" next to
   "ngưỡng cảnh báo: gấp 14,4 lần" in a text that says it "đã ngừng giảm nhanh":
   services/alerts/text.py:205 (``missed_multiple_tenths`` rounds half up whatever side
   of the factor the exact multiple lies on).
4. A burn alert cleared because its target was raised to 100 % (no budget left: the
   ``can_fire`` branch, services/alerts/conditions.py:253-258) says "trong 1 giờ qua và
   trong 5 phút qua chưa có số liệu" / "nothing counted over the last hour or over the
   last 5 minutes" and then quotes 99,94 % (11.703 / 11.710) for that hour:
   services/alerts/text.py:155 (a window is "empty" when its multiple is None, and
   ``missed_multiple_tenths``, text.py:201, is None for a 100 % target too).

Checked and found right (no test): rates.format_rate/format_bp/format_target and every
caller (half up from the counts, never 100 % with one missing, "99,94 %"/"99.94%",
"11.703"/"11,703"); /v1/kpis ``ratio``/``rate_bp``/``meets_target`` (null below
``min_volume``, no rate for 0 of 0); the CSV (``0.9994`` from ``rate_bp``, numbers not
text) and the XLSX (numeric cells, ``0.00%``); egov_kpi_ratio not written for 0 of 0;
Grafana's percentunit with two decimals, shown_rate, end mappings and the low-volume
stat colour (reviews 12, 30, 73, 79; the decimal point is a documented limit); the alert
below-target texts (low volume, hold margin) and burn multiples at or above the factor.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from services.alerts import conditions
from services.alerts.model import Status
from services.common.calendar import WorkingCalendar
from services.common.figures import Figure, Standing
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.history import History
from services.wall.overview import build_overview
from services.wall.render import overview_html
from services.wall.screens import unit_html
from services.wall.settings import WallSettings
from services.wall.unitpage import trends
from services.wall.views import PageQuery, WallViews
from tests.unit.wall.factories import NOW, fig, recent, snapshot

KPI = "document_signing"
FEW = (2, 3)  # 2 of 3 signed: 66,67 %, far under min_volume (20): too few to judge


# ------------------------------------------------------------------ 1. the /wall trend


class _History:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def history(self, unit: str, kpi: str, days: int) -> History:
        return History(tuple(self.items))


class _Hub:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.sources = _History(items)


def _few_days() -> list[dict[str, Any]]:
    """/v1/kpis/history items (services/metrics/history.py ``DayFigure.to_json``): the
    last three days at 2 of 3, under the 95 % target in force then."""
    today = NOW.astimezone(VN_TZ).date()
    return [
        {
            "day": (today - timedelta(days=back)).isoformat(),
            "numerator": FEW[0],
            "denominator": FEW[1],
            "ratio": FEW[0] / FEW[1],
            "rate_bp": 6667,
            "restated": False,
            "target_bp": 9500,
        }
        for back in (2, 1, 0)
    ]


async def test_the_wall_trend_does_not_judge_a_day_too_small_to_judge() -> None:
    figures = [
        fig("19", 180, 200, last_event=recent(1)),
        fig("01843", *FEW, last_event=recent(1)),  # min_volume 20, target 95 %
        fig("01850", 60, 100, last_event=recent(1)),
    ]
    ov = build_overview(snapshot(figures), "19", "01843", NOW, 30)
    # The wall's own table, for today's same counts: too few to judge, never below.
    table = overview_html("en", ov, NOW)
    assert 'class="rate-cell st-low_volume" data-unit="01843"' in table
    views = WallViews(WallSettings(), _Hub(_few_days()), WorkingCalendar())  # type: ignore[arg-type]
    html = await views.trend_html(PageQuery("en", "19", "01843", KPI), ov)
    assert "66.67%" in html  # the three days are drawn
    assert 'class="pt below"' not in html


# ------------------------------------------------------------------ 2. the unit screen


def test_the_unit_screen_sparkline_does_not_judge_days_too_small_to_judge() -> None:
    today = date(2027, 1, 5)
    f = Figure(
        KPI, "14758", "day", *FEW, 9_500, 20,
        unit_name="Xã Thăng Long", unit_name_en="Thang Long Commune",
        level="commune", province="38", parent="38",
        period_start=datetime(2027, 1, 5, tzinfo=VN_TZ),
    )  # fmt: skip
    items = [
        {"day": (today - timedelta(days=back)).isoformat(), "numerator": FEW[0],
         "denominator": FEW[1], "restated": False, "target_bp": 9_500}
        for back in (2, 1, 0)
    ]  # fmt: skip
    info = UnitInfo(f.unit, f.unit_name, f.unit_name_en, f.level, f.province, f.parent)
    html = unit_html("en", info, [f], [trends(KPI, items, today)])
    # The period cell of this month (6 of 9): too few to judge, as the legend says.
    assert re.search(r'data-period="this_month" class="st-low_volume"', html)
    assert f.status is Standing.LOW_VOLUME
    days_spark = re.search(r'<svg class="spark".*?</svg>', html)
    assert days_spark is not None
    assert 'class="below"' not in days_spark.group(0)


# ------------------------------------------------------------------ 3-4. burn texts


def _figure(numerator: int, denominator: int, target_bp: int, window: str) -> Figure:
    return Figure(
        KPI, "404", window, numerator, denominator, target_bp, 20,
        "Huyện Nông Cống", "Nong Cong District", "Tỷ lệ văn bản điện tử được ký số",
        "Digital-signing rate", "district", "38",
    )  # fmt: skip


BURN_KEY = conditions.AlertKey(conditions.BURN, KPI, "404", "1h")


def _multiple(found: re.Match[str] | None, lang: str = "vi") -> float:
    assert found is not None
    thousands, decimal = (".", ",") if lang == "vi" else (",", ".")
    return float(found.group(1).replace(thousands, "").replace(decimal, "."))


def test_a_burn_resolution_never_quotes_the_hour_at_the_threshold_it_is_under() -> None:
    # 281 of 1,000 against 95 %: 71.9 % missed of the 5 % allowed, exactly 14.38 times,
    # under the 14.4x factor; the last 5 minutes (0 of 100) still at 20 times.
    figures = [_figure(281, 1_000, 9_500, "1h"), _figure(0, 100, 9_500, "5m")]
    (verdict,) = conditions.kpi_budget_burn(figures, 0, {BURN_KEY})
    assert verdict.status is Status.CLEAR  # the hour does not burn at 14.4x
    assert "ngưỡng cảnh báo: gấp 14,4 lần" in verdict.summary_vi
    hour_vi = _multiple(re.search(r"trong 1 giờ qua gấp ([\d.,]+) lần", verdict.summary_vi))
    hour_en = _multiple(
        re.search(r"over the last hour is ([\d.,]+) times", verdict.summary_en), "en"
    )
    assert hour_vi < 14.4
    assert hour_en < 14.4


def test_a_burn_cleared_by_a_100_percent_target_does_not_say_nothing_was_counted() -> None:
    # Nông Cống's 11,703 of 11,710 under the 100 % signing target (Chỉ thị 02/CT-TTg): an
    # alert opened under an earlier 95 % target clears at once (no budget can burn).
    figures = [_figure(11_703, 11_710, 10_000, "1h"), _figure(500, 520, 10_000, "5m")]
    (verdict,) = conditions.kpi_budget_burn(figures, 0, {BURN_KEY})
    assert verdict.status is Status.CLEAR
    assert "99,94 % (11.703 / 11.710)" in verdict.summary_vi
    assert "chưa có số liệu" not in verdict.summary_vi
    assert "nothing counted" not in verdict.summary_en
