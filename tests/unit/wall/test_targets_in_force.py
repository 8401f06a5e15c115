"""The unit page and the trend judge each day and period against the target in force then
(/v1/kpis/history's per-day ``target_bp``; review 67), not today's."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from services.common.figures import Figure
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.screens import spark, unit_html
from services.wall.trend import TrendPoint, points_from_json, trend_svg
from services.wall.unitpage import trends

TODAY = date(2027, 1, 5)


def items(change: date = date(2027, 1, 1), said: bool = True) -> list[dict[str, object]]:
    """96 of 100 a day from 1 December: 100 % in force before ``change``, 95 % from it."""
    found = []
    day = date(2026, 12, 1)
    while day <= TODAY:
        item: dict[str, object] = {"day": day.isoformat(), "numerator": 96, "denominator": 100}
        if said:
            item["target_bp"] = 10_000 if day < change else 9_500
        found.append(item)
        day += timedelta(days=1)
    return found


def figure() -> Figure:
    return Figure(
        "document_signing", "14758", "day", 96, 100, 9_500, 20,
        unit_name="Xã Thăng Long", unit_name_en="Thang Long Commune",
        level="commune", province="38", parent="38",
        period_start=datetime(2027, 1, 5, tzinfo=VN_TZ),
    )  # fmt: skip


def page(history: list[dict[str, object]]) -> str:
    f = figure()
    info = UnitInfo(f.unit, f.unit_name, f.unit_name_en, f.level, f.province, f.parent)
    return unit_html("en", info, [f], [trends(f.kpi, history, TODAY)])


def cell(html: str, period: str) -> tuple[str, str | None]:
    found = re.search(rf'data-period="{period}" class="st-([a-z_]+)"( data-target-bp="(\d+)")?',
                      html)  # fmt: skip
    assert found is not None
    return found.group(1), found.group(3)


def test_periods_carry_the_target_of_their_last_counted_day() -> None:
    t = trends("document_signing", items(), TODAY)
    by_key = {c.key: c.target_bp for c in t.compared}
    assert by_key == {"this_month": 9500, "previous_month": 10000,
                      "same_month_last_year": None, "ytd": 9500,
                      "last_year_to_date": None}  # fmt: skip
    assert [(m.key, m.target_bp) for m in t.months[-2:]] == [("2026-12", 10000), ("2027-01", 9500)]
    assert t.days[-5].target_bp == 9500 and t.days[-6].target_bp == 10000


def test_last_december_is_below_its_own_target_and_january_meets_the_new_one() -> None:
    html = page(items())
    assert cell(html, "previous_month") == ("below", "10000")
    assert cell(html, "this_month") == ("meets", "9500")
    assert cell(html, "ytd") == ("meets", "9500")
    # The tooltip names the target it was judged against: not the row's (today's) 95 %.
    assert 'class="st-below" data-target-bp="10000" title="Below target (Target 100%)"' in html


def test_a_target_changed_within_a_month_judges_it_by_its_last_counted_day() -> None:
    t = trends("document_signing", items(change=date(2027, 1, 3)), TODAY)
    assert {c.key: c.target_bp for c in t.compared}["this_month"] == 9500


def test_an_answer_without_day_targets_is_judged_against_todays_as_before() -> None:
    """A worker older than the field: every period against today's target (95 %)."""
    html = page(items(said=False))
    assert cell(html, "previous_month") == ("meets", "9500")
    assert points_from_json(items(said=False))[0].target_bp is None


def test_a_target_that_is_not_an_integer_is_not_read() -> None:
    bad = [{"day": "2027-01-05", "numerator": 1, "denominator": 1, "target_bp": v}
           for v in (True, "9500", 95.0)]  # fmt: skip
    assert [p.target_bp for p in points_from_json(bad)] == [None, None, None]


def test_the_spark_marks_each_point_against_its_own_target_and_steps_the_line() -> None:
    svg = spark([(96, 100, 10_000), (96, 100, 10_000), (96, 100, 9_500), (96, 100, 9_500)])
    assert svg.count('class="below"') == 2
    assert '<polyline class="tgt"' in svg and '<line class="tgt"' not in svg
    steady = spark([(96, 100, 9_500), (0, 0, None), (96, 100, 9_500)])
    assert '<line class="tgt"' in steady and 'class="below"' not in steady


def test_the_trend_chart_judges_each_day_against_its_own_target() -> None:
    points = [TrendPoint("2026-12-31", 96, 100, target_bp=10_000),
              TrendPoint("2027-01-01", 96, 100, target_bp=9_500),
              TrendPoint("2027-01-02", 96, 100)]  # fmt: skip
    svg = trend_svg("en", "Thang Long", points, 9_500)
    assert svg.count('class="pt below"') == 1  # 31 December only; the unsaid day: today's
